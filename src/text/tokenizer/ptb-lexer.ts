/**
 * An emulation of the PTBLexer of Stanford CoreNLP 3.4.1 (the jar pycocoevalcap runs) with the options
 * the COCO toolkit uses (`-preserveLines -lowerCase`, otherwise defaults). The rules and their order
 * follow the published JFlex grammar of that era; where the 3.4.1 build behaves differently from the
 * older grammar, the rules were adjusted to what the jar outputs (checked with test fixtures made by
 * scripts/make-metric-fixtures.py and by running the jar over large caption sets).
 *
 * Tokens are returned as the jar prints them before lower-casing (e.g. `-LRB-`, "``", `''`, `--`).
 */
import { MacroTable, Scanner, type LexRule } from './automaton.js';

const M: Record<string, string> = {};
const def = (name: string, src: string) => {
  M[name] = src;
};

// --- character classes and shared pieces ---
def('SPACE', String.raw`[ \t\u00A0\u2000-\u200A\u3000]`);
def('SPACES', String.raw`{SPACE}+`);
def('NEWLINE', String.raw`\r|\r?\n|\u2028|\u2029|\u000B|\u000C|\u0085`);
def('SPACENL', String.raw`({SPACE}|{NEWLINE})`);
def('SGML', String.raw`<([!?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:.\-]*([ ]+([A-Za-z][A-Za-z0-9_:.\-]*|[A-Za-z][A-Za-z0-9_:.\-]*[ ]*=[ ]*('[^'\r\n]*'|"[^"\r\n]*"|[A-Za-z][A-Za-z0-9_:.\-]*)))*[ ]*\/?|\/[A-Za-z][A-Za-z0-9_:.\-]*)[ ]*>`);
def('SENTEND', String.raw`{SPACENL}({SPACENL}|[:uppercase:]|{SGML})`);
def('DIGIT', String.raw`([:digit:]|[\u07C0-\u07C9])`);
def('LETTERCLASS', String.raw`([:letter:]|{SPLET}|[\u00AD\u0237-\u024F\u02C2-\u02C5\u02D2-\u02DF\u02E5-\u02FF\u0300-\u036F\u0370-\u037D\u0384\u0385\u03CF\u03F6\u03FC-\u03FF\u0483-\u0487\u04CF\u04F6-\u04FF\u0510-\u0525\u055A-\u055F\u0591-\u05BD\u05BF\u05C1\u05C2\u05C4\u05C5\u05C7\u0615-\u061A\u063B-\u063F\u064B-\u065E\u0670\u06D6-\u06EF\u06FA-\u06FF\u070F\u0711\u0730-\u074F\u0750-\u077F\u07A6-\u07B1\u07CA-\u07F5\u07FA\u0900-\u0903\u093C\u093E-\u094E\u0951-\u0955\u0962-\u0963\u0981-\u0983\u09BC-\u09C4\u09C7\u09C8\u09CB-\u09CD\u09D7\u09E2\u09E3\u0A01-\u0A03\u0A3C\u0A3E-\u0A4F\u0A81-\u0A83\u0ABC-\u0ACF\u0B82\u0BBE-\u0BC2\u0BC6-\u0BC8\u0BCA-\u0BCD\u0C01-\u0C03\u0C3E-\u0C56\u0D3E-\u0D44\u0D46-\u0D48\u0E30-\u0E3A\u0E47-\u0E4E\u0EB1-\u0EBC\u0EC8-\u0ECD])`);
def('ALNUM', String.raw`([:letter:]|[:digit:])`);

// --- entities, dashes ---
def('SPMDASH', String.raw`&(MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]`);
def('SPAMP', String.raw`&amp;`);
def('SPPUNC', String.raw`&(HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);`);
def('SPLET', String.raw`&[aeiouAEIOU](acute|grave|uml);`);

// --- numbers ---
def('DATE', String.raw`{DIGIT}{1,2}[\-\/]{DIGIT}{1,2}[\-\/]{DIGIT}{2,4}`);
def('NUM', String.raw`{DIGIT}+|{DIGIT}*([.:,\u00AD\u066B\u066C]{DIGIT}+)+`);
def('NUMBER', String.raw`[\-+]?{NUM}`);
def('SUBSUPNUM', String.raw`[\u207A\u207B\u208A\u208B]?([\u2070\u00B9\u00B2\u00B3\u2074-\u2079]+|[\u2080-\u2089]+)`);
def('FRAC', String.raw`({DIGIT}{1,4}[\- \u00A0])?{DIGIT}{1,4}(\\?\/|\u2044){DIGIT}{1,4}`);
def('FRAC2', String.raw`[\u00BC\u00BD\u00BE\u2153-\u215E]`);
def('DOLSIGN', String.raw`([A-Z]*\$|#)`);
def('DOLSIGN2', String.raw`[\u00A2\u00A3\u00A4\u00A5\u0080\u20A0\u20AC\u060B\u0E3F\u20A4\uFFE0\uFFE1\uFFE5\uFFE6]`);

// --- words ---
def('WORD', String.raw`{LETTERCLASS}({LETTERCLASS}|{DIGIT})*([.!?]{LETTERCLASS}({LETTERCLASS}|{DIGIT})*)*`);
def('FILENAME_EXT', String.raw`bat|bmp|c|class|cgi|cpp|dll|doc|docx|exe|gif|gz|h|htm|html|jar|java|jpeg|jpg|mov|mp3|pdf|php|pl|png|ppt|ps|py|sql|tar|txt|wav|x|xml|zip`);
def('FILENAME', String.raw`[A-Za-z0-9]+(\.[A-Za-z0-9]+)*\.{FILENAME_EXT}`);
def('APOS', String.raw`['\u0092\u2019]|&apos;`);
def('APOSETCETERA', String.raw`{APOS}|[\`\u0091\u2018\u201B]`);
def('THING', String.raw`([dDoOlL]{APOSETCETERA}{ALNUM})?{ALNUM}+({HYPHEN}([dDoOlL]{APOSETCETERA}{ALNUM})?{ALNUM}+)*`);
def('THINGA', String.raw`[A-Z]+(([+&]|{SPAMP})[A-Z]+)+`);
def('THING3', String.raw`[A-Za-z0-9]+(-[A-Za-z]+){0,2}(\\?\/[A-Za-z0-9]+(-[A-Za-z]+){0,2}){1,2}`);
def('HTHING', String.raw`[A-Za-z0-9][A-Za-z0-9.,\u00AD]*(-([A-Za-z0-9\u00AD]+|{ACRO2}\.))+`);
def('REDAUX', String.raw`{APOS}([msdMSD]|re|ve|ll)`);
def('SWORD', String.raw`[A-Za-z\u00AD]*[A-MO-Za-mo-z]\u00AD*`);
def('SREDAUX', String.raw`n{APOSETCETERA}t`);
def('APOWORD', String.raw`{APOS}n{APOS}?|[lLdDjJ]{APOS}|Dunkin{APOS}|somethin{APOS}|ol{APOS}|{APOS}em|[A-HJ-XZn]{APOSETCETERA}[:letter:]{2}[:letter:]*|{APOS}[2-9]0s|{APOS}till?|[:letter:][:letter:]*[aeiouyAEIOUY]{APOSETCETERA}[aeiouA-Z][:letter:]*|{APOS}cause|cont'd\.?|'twas|nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|O{APOSETCETERA}o`);
def('APOWORD2', String.raw`y{APOS}`);
def('FULLURL', String.raw`https?:\/\/[^ \t\n\f\r"<>|(){}]+[^ \t\n\f\r"<>|.!?(){},\-]`);
def('LIKELYURL', String.raw`((www\.([^ \t\n\f\r"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|(([^ \t\n\f\r"\`'<>|.!?(){},-_$]+\.)+(com|net|org|edu)))(\/[^ \t\n\f\r"<>|()]+[^ \t\n\f\r"<>|.!?(){},\-])?`);
def('EMAIL', String.raw`(&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r"<>|()\u00A0{}]*@([^ \t\n\f\r"<>|(){}.\u00A0]+\.)*([^ \t\n\f\r"<>|(){}.\u00A0]+)(&gt;|>)?`);
def('TWITTER_NAME', String.raw`@[a-zA-Z_][a-zA-Z_0-9]*`);
def('TWITTER_CATEGORY', String.raw`#{LETTERCLASS}+`);
def('TWITTER', String.raw`{TWITTER_NAME}|{TWITTER_CATEGORY}`);

// --- abbreviations ---
def('ABMONTH', String.raw`Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec`);
def('ABDAYS', String.raw`Mon|Tue|Tues|Wed|Thu|Thurs|Fri`);
def('ABSTATE', String.raw`Ala|Ariz|[A]z|[A]rk|Calif|Colo|Conn|Ct|Dak|[D]el|Fla|Ga|[I]ll|Ind|Kans?|Ky|[L]a|[M]ass|Md|Mich|Minn|[M]iss|Mo|Mont|Neb|Nev|Okla|[O]re|[P]a|Penn|Tenn|[T]ex|Va|Vt|[W]ash|Wisc?|Wyo`);
def('ACRO', String.raw`[A-Za-z](\.[A-Za-z])*|(Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(U\.K|U\.S\.S\.R)`);
def('ACRO2', String.raw`[A-Za-z](\.[A-Za-z])+|(Canada|Sino|Korean|EU|Japan|non)-U\.S|U\.S\.-(U\.K|U\.S\.S\.R)`);
def('ABTITLE', String.raw`Mr|Mrs|Ms|[M]iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|Rev|Maj|Sgt|Cpl|Pvt|Mt|Capt|Ste?|Ave|Pres|Lieut|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc`);
def('ABPTIT', String.raw`Jr|Sr|Bros|(Ed|Ph)\.D|Blvd|Rd|Esq`);
def('ABCOMP', String.raw`Inc|Cos?|Corp|Pp?t[ye]s?|Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys`);
def('ABCOMP2', String.raw`Invt|Elec|Natl|M[ft]g|Dept`);
def('ABNUM', String.raw`tel|est|ext|sq`);
def('ABBREV1', String.raw`({ABMONTH}|{ABDAYS}|{ABSTATE}|{ABCOMP}|{ABNUM}|{ABPTIT}|etc|al|seq|Bldg)\.`);
def('ABBREV4', String.raw`[A-Za-z]|{ABTITLE}|vs|Alex|Wm|Jos|Cie|a\.k\.a|cf|TREAS|Ph|{ACRO}|{ABCOMP2}`);
def('ABBREV2', String.raw`{ABBREV4}\.`);
def('ABBREV3', String.raw`(ca|figs?|prop|nos?|art|bldg|prop|pp|op)\.`);
def('ACRONYM', String.raw`({ACRO})\.`);
def('SENTSTARTERS', String.raw`([A]bout|[A]ccording|[A]dditionally|[A]fter|[A]n|[A]|[A]s|[A]t|[B]ut|[E]arlier|[H]e|[H]er|[H]ere|[H]owever|[I]f|[I]n|[I]t|[L]ast|[M]any|[M]ore|[M]r\.|[M]s\.|[N]ow|[O]nce|[O]ne|[O]ther|[O]ur|[S]he|[S]ince|[S]o|[S]ome|[S]uch|[T]hat|[T]he|[T]heir|[T]hen|[T]here|[T]hese|[T]hey|[T]his|[W]e|[W]hen|[W]hile|[W]hat|[Y]et|[Y]ou|{SGML})`);

// --- punctuation ---
def('PHONE', String.raw`(\([0-9]{2,3}\)[ \u00A0]?|(\+\+?)?([0-9]{2,4}[\- \u00A0])?[0-9]{2,4}[\- \u00A0])[0-9]{3,4}[\- \u00A0]?[0-9]{3,5}|((\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\.[0-9]{3,5}`);
def('SMILEY', String.raw`[<>]?[:;=][\-o\*']?[\(\)DPdpO\\{@\|\[\]]`);
def('ASIANSMILEY', String.raw`[\^x=~<>]\.\[\^x=~<>]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)|\([\^x=~<>']-[\^x=~<>'\`]\)`);
def('FAKEDUCKFEET', String.raw`<<|>>`);
def('HYPHEN', String.raw`[\-_\u058A\u2010\u2011]`);
def('HYPHENS', String.raw`\-+`);
def('LDOTS', String.raw`\.{3,5}|(\.[ \u00A0]){2,4}\.|[\u0085\u2026]`);
def('ATS', String.raw`@+`);
def('UNDS', String.raw`_+`);
def('ASTS', String.raw`\*+|(\\\*){1,3}`);
def('HASHES', String.raw`#+`);
def('FNMARKS', String.raw`{ATS}|{HASHES}|{UNDS}`);
def('INSENTP', String.raw`[,;:\u3001]`);
def('QUOTES', String.raw`{APOS}|''|[\`\u2018\u2019\u201A\u201B\u201C\u201D\u0091\u0092\u0093\u0094\u201E\u201F\u2039\u203A\u00AB\u00BB]{1,2}`);
def('DBLQUOT', String.raw`"|&quot;`);
def('TBSPEC', String.raw`-(RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-|S(&|&amp;)P-500|S(&|&amp;)Ls|Cap{APOS}n|c{APOS}est`);
def('TBSPEC2', String.raw`{APOS}[0-9][0-9]`);
def('MISCSYMBOL', String.raw`[+%&~\^|\\\u00A6\u00A7\u00A8\u00A9\u00AC\u00AE\u00AF\u00B0-\u00B3\u00B4-\u00BA\u00D7\u00F7\u0387\u05BE\u05C0\u05C3\u05C6\u05F3\u05F4\u0600-\u0603\u0606-\u060A\u060C\u0614\u061B\u061E\u066A\u066D\u0703-\u070D\u07F6\u07F7\u07F8\u0964\u0965\u0E4F\u1FBD\u2016\u2017\u2020-\u2023\u2030-\u2038\u203B\u203E-\u2042\u2044\u207A-\u207F\u208A-\u208E\u2100-\u214F\u2190-\u21FF\u2200-\u2BFF\u3012\u30FB\uFF01-\uFF0F\uFF1A-\uFF20\uFF3B-\uFF40\uFF5B-\uFF65]`);

/** What to do with a match. */
type Action =
  | { kind: 'token' } // the text as is
  | { kind: 'as'; text: string } // a fixed replacement
  | { kind: 'skip' } // whitespace and untokenizable characters
  | { kind: 'newline' }
  | { kind: 'pushback'; n: number } // emit all but the last n characters, rescan those
  | { kind: 'softHyphens' } // remove U+00AD
  | { kind: 'quote'; left: boolean }
  | { kind: 'amp' } // &amp; -> &
  | { kind: 'fraction' } // FRAC: spaces become no-break spaces
  | { kind: 'vulgarFraction' } // ½ -> 1/2
  | { kind: 'currency' }
  | { kind: 'phone' }
  | { kind: 'brackets' } // ( ) inside a token become -LRB- -RRB-
  | { kind: 'sgml' }
  | { kind: 'hyphens' } // 3-4 hyphens -> --
  | { kind: 'periodAgain' } // abbreviation at a sentence end: the token, then its period again
  | { kind: 'acronymAtEnd' }; // like periodAgain, but one letter + period returns the letter only

const t = (): Action => ({ kind: 'token' });
const as = (text: string): Action => ({ kind: 'as', text });

const RULES: LexRule<Action>[] = [
  { pattern: 'c[+][+]|(c|f)#', action: t() },
  { pattern: `cannot|'twas`, action: { kind: 'pushback', n: 3 } },
  { pattern: `'tis|gonna|gotta|lemme|gimme|wanna`, action: { kind: 'pushback', n: 2 } },
  { pattern: '{SGML}', action: { kind: 'sgml' } },
  { pattern: '{SPMDASH}', action: as('--') },
  { pattern: '{SPAMP}', action: { kind: 'amp' } },
  { pattern: '{SPPUNC}', action: t() },
  { pattern: '{WORD}', lookahead: '{REDAUX}', action: { kind: 'softHyphens' } },
  { pattern: '{SWORD}', lookahead: '{SREDAUX}', action: { kind: 'softHyphens' } },
  { pattern: '{WORD}', action: { kind: 'softHyphens' } },
  { pattern: '{APOWORD}', action: t() },
  { pattern: '{APOWORD2}', lookahead: '[:letter:]', action: t() },
  { pattern: '{FULLURL}', action: t() },
  { pattern: '{LIKELYURL}', action: t() },
  { pattern: '{EMAIL}', action: t() },
  { pattern: '{TWITTER}', action: t() },
  { pattern: '{REDAUX}', lookahead: '[^A-Za-z]', action: { kind: 'quote', left: false } },
  { pattern: '{SREDAUX}', action: { kind: 'quote', left: false } },
  { pattern: '{DATE}', action: t() },
  { pattern: '{NUMBER}', action: { kind: 'softHyphens' } },
  { pattern: '{SUBSUPNUM}', action: t() },
  { pattern: '{FRAC}', action: { kind: 'fraction' } },
  { pattern: '{FRAC2}', action: { kind: 'vulgarFraction' } },
  { pattern: '{TBSPEC}', action: { kind: 'amp' } },
  { pattern: '{THING3}', action: t() },
  { pattern: '{DOLSIGN}', action: t() },
  { pattern: '{DOLSIGN2}', action: { kind: 'currency' } },
  { pattern: '{ACRONYM}', lookahead: '{SPACENL}+{SENTSTARTERS}{SPACENL}', action: { kind: 'acronymAtEnd' } },
  { pattern: '{ABBREV3}', lookahead: '{SPACENL}?[:digit:]', action: t() },
  { pattern: String.raw`(pt[eyEY]|co)\.`, lookahead: '{SPACE}(ltd|lim)', action: t() },
  { pattern: '{ABBREV1}', lookahead: '{SENTEND}', action: { kind: 'periodAgain' } },
  { pattern: '{ABBREV1}', lookahead: String.raw`(.|\n)(.|\n)`, action: t() },
  { pattern: '{ABBREV1}', action: { kind: 'periodAgain' } }, // only at the end of the text
  { pattern: '{ABBREV2}', action: t() },
  { pattern: '{ABBREV4}', lookahead: '{SPACE}', action: t() },
  { pattern: '{ACRO}', lookahead: '{SPACENL}', action: t() },
  { pattern: '{TBSPEC2}', lookahead: '{SPACENL}', action: t() },
  { pattern: '{FILENAME}', lookahead: '({SPACENL}|[.?!,])', action: t() },
  { pattern: String.raw`{WORD}\.`, lookahead: '{INSENTP}', action: { kind: 'softHyphens' } },
  { pattern: '{PHONE}', action: { kind: 'phone' } },
  { pattern: '{DBLQUOT}', lookahead: '[A-Za-z0-9$]', action: { kind: 'quote', left: true } },
  { pattern: '{DBLQUOT}', action: { kind: 'quote', left: false } },
  { pattern: String.raw`\u007F`, action: { kind: 'skip' } },
  { pattern: '<|&lt;', action: as('<') },
  { pattern: '>|&gt;', action: as('>') },
  { pattern: '{SMILEY}', lookahead: '[^A-Za-z0-9]', action: { kind: 'brackets' } },
  { pattern: '{ASIANSMILEY}', action: { kind: 'brackets' } },
  { pattern: String.raw`\{`, action: as('-LCB-') },
  { pattern: String.raw`\}`, action: as('-RCB-') },
  { pattern: String.raw`\[`, action: as('-LSB-') },
  { pattern: String.raw`\]`, action: as('-RSB-') },
  { pattern: String.raw`\(`, action: as('-LRB-') },
  { pattern: String.raw`\)`, action: as('-RRB-') },
  { pattern: '{HYPHENS}', action: { kind: 'hyphens' } },
  { pattern: '{LDOTS}', action: as('...') },
  { pattern: '{FNMARKS}', action: t() },
  { pattern: '{ASTS}', action: t() },
  { pattern: '{INSENTP}', action: t() },
  { pattern: '[?!]+', action: t() },
  { pattern: String.raw`[.\u00A1\u00BF\u037E\u0589\u061F\u06D4\u0700-\u0702\u07FA\u3002]`, action: t() },
  { pattern: '=', action: t() },
  { pattern: String.raw`\/`, action: t() },
  { pattern: String.raw`{HTHING}\.`, lookahead: '{INSENTP}', action: { kind: 'softHyphens' } },
  { pattern: '{HTHING}', action: { kind: 'softHyphens' } },
  { pattern: String.raw`{THING}\.`, lookahead: '{INSENTP}', action: t() },
  { pattern: '{THING}', action: t() },
  { pattern: String.raw`{THINGA}\.`, lookahead: '{INSENTP}', action: { kind: 'amp' } },
  { pattern: '{THINGA}', action: { kind: 'amp' } },
  { pattern: `'`, lookahead: String.raw`[A-Za-z][^ \t\n\r\u00A0]`, action: { kind: 'quote', left: true } },
  { pattern: '{REDAUX}', action: { kind: 'quote', left: false } },
  { pattern: '{QUOTES}', action: { kind: 'quote', left: false } },
  { pattern: '{FAKEDUCKFEET}', action: t() },
  { pattern: '{MISCSYMBOL}', action: t() },
  { pattern: String.raw`\u0000|{SPACES}|[\u200B\u200E-\u200F\uFEFF]`, action: { kind: 'skip' } },
  { pattern: '{NEWLINE}', action: { kind: 'newline' } },
  { pattern: '&nbsp;', action: { kind: 'skip' } },
  { pattern: '.', action: { kind: 'skip' } }, // untokenizable: the jar deletes it (and logs a warning)
];

let scanner: Scanner<Action> | null = null;
function getScanner(): Scanner<Action> {
  scanner ??= new Scanner(new MacroTable(M), RULES);
  return scanner;
}

function latexQuotes(tok: string, left: boolean): string {
  let s = left ? tok.replace(/&apos;|'/g, '`').replace(/"|&quot;/g, '``') : tok.replace(/&apos;|'/g, "'").replace(/"|&quot;/g, "''");
  s = s.replace(/[\u0091\u2018\u201B\u2039]/g, '`');
  s = s.replace(/[\u0092\u2019\u203A]/g, "'");
  s = s.replace(/[\u0093\u201C\u00AB]/g, '``');
  s = s.replace(/[\u0094\u201D\u00BB]/g, "''");
  return s;
}

function removeSoftHyphens(s: string): string {
  const out = s.replace(/\u00AD/g, '');
  return out.length === 0 ? '-' : out;
}

/** The token sequence the jar produces for `text`; a newline token is `null`. */
export function lexPtb(text: string): (string | null)[] {
  const sc = getScanner();
  const out: (string | null)[] = [];
  let pos = 0;
  while (pos < text.length) {
    const m = sc.match(text, pos);
    if (!m) {
      pos++; // unreachable: the last rule matches any single character but \n, and {NEWLINE} matches \n
      continue;
    }
    const a = m.action;
    let tok: string | null = m.text;
    let end = m.end;
    switch (a.kind) {
      case 'token':
        break;
      case 'as':
        tok = a.text;
        break;
      case 'skip':
        tok = null;
        break;
      case 'newline':
        out.push(null);
        tok = null;
        break;
      case 'pushback':
        end -= a.n;
        tok = text.slice(m.start, end);
        break;
      case 'softHyphens':
        tok = removeSoftHyphens(tok);
        break;
      case 'quote':
        tok = latexQuotes(tok, a.left);
        break;
      case 'amp':
        tok = tok.replace(/&amp;/gi, '&');
        break;
      case 'fraction':
        tok = tok.replace(/ /g, '\u00A0');
        break;
      case 'vulgarFraction':
        tok = tok.replace(/\u00BC/g, '1/4').replace(/\u00BD/g, '1/2').replace(/\u00BE/g, '3/4').replace(/\u2153/g, '1/3').replace(/\u2154/g, '2/3');
        break;
      case 'currency':
        tok = tok.replace(/\u00A2/g, 'cents').replace(/\u00A3/g, '#').replace(/[\u0080\u00A4\u20A0\u20AC]/g, '$');
        break;
      case 'phone':
        tok = tok.replace(/ /g, '\u00A0').replace(/\(/g, '-LRB-').replace(/\)/g, '-RRB-');
        break;
      case 'brackets':
        tok = tok.replace(/\(/g, '-LRB-').replace(/\)/g, '-RRB-');
        break;
      case 'sgml':
        tok = tok.replace(/ /g, '\u00A0');
        break;
      case 'hyphens':
        if (tok.length >= 3 && tok.length <= 4) tok = '--';
        break;
      case 'periodAgain':
        end -= 1; // the token keeps its period; the period is scanned again as its own token
        break;
      case 'acronymAtEnd':
        while (tok.length > 0 && /[ \t]$/.test(tok)) tok = tok.slice(0, -1);
        if (tok.length === 2) {
          tok = tok.slice(0, 1);
          end = m.start + 1;
        } else end = m.start + tok.length - 1;
        break;
    }
    if (tok !== null) out.push(tok);
    pos = end;
  }
  return out;
}
