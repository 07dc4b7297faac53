/**
 * The Snowball English ("Porter2") stemmer, which METEOR's stem module uses. Written from the
 * published algorithm description (snowballstem.org/algorithms/english/stemmer.html).
 */

const VOWELS = new Set(['a', 'e', 'i', 'o', 'u', 'y']);
const DOUBLES = ['bb', 'dd', 'ff', 'gg', 'mm', 'nn', 'pp', 'rr', 'tt'];
const LI_ENDINGS = new Set(['c', 'd', 'e', 'g', 'h', 'k', 'm', 'n', 'r', 't']);

const EXCEPTIONS1: Record<string, string> = {
  skis: 'ski',
  skies: 'sky',
  dying: 'die',
  lying: 'lie',
  tying: 'tie',
  idly: 'idl',
  gently: 'gentl',
  ugly: 'ugli',
  early: 'earli',
  only: 'onli',
  singly: 'singl',
  sky: 'sky',
  news: 'news',
  howe: 'howe',
  atlas: 'atlas',
  cosmos: 'cosmos',
  bias: 'bias',
  andes: 'andes',
};
const EXCEPTIONS2 = new Set(['inning', 'outing', 'canning', 'herring', 'earring', 'proceed', 'exceed', 'succeed']);

const isVowel = (w: string, i: number) => VOWELS.has(w[i]);

/** Start of the region after the first non-vowel that follows a vowel, from `from`. */
function regionAfter(w: string, from: number): number {
  for (let i = from + 1; i < w.length; i++) if (!isVowel(w, i) && isVowel(w, i - 1)) return i + 1;
  return w.length;
}

function shortSyllableAt(w: string, end: number): boolean {
  // w[end-1] is the last letter of the syllable
  if (end === 2) return isVowel(w, 0) && !isVowel(w, 1);
  if (end < 3) return false;
  const c = w[end - 1];
  return !isVowel(w, end - 3) && isVowel(w, end - 2) && !isVowel(w, end - 1) && c !== 'w' && c !== 'x' && c !== 'Y';
}

export function stemEnglish(word: string): string {
  let w = word;
  if (w.length <= 2) return w;
  if (w.startsWith("'")) w = w.slice(1);
  if (EXCEPTIONS1[w] !== undefined) return EXCEPTIONS1[w];
  // y at the start or after a vowel is a consonant: mark it Y
  let chars = w.split('');
  for (let i = 0; i < chars.length; i++) if (chars[i] === 'y' && (i === 0 || VOWELS.has(chars[i - 1]))) chars[i] = 'Y';
  w = chars.join('');

  let r1: number;
  const special = ['gener', 'commun', 'arsen'].find((p) => w.startsWith(p));
  r1 = special ? special.length : regionAfter(w, 0);
  const r2 = regionAfter(w, r1);
  // recompute-free helpers (R1/R2 positions stay valid for suffix removal)
  const inR1 = (suffixLen: number) => w.length - suffixLen >= r1;
  const inR2 = (suffixLen: number) => w.length - suffixLen >= r2;
  const hasVowelBefore = (end: number) => {
    for (let i = 0; i < end; i++) if (isVowel(w, i)) return true;
    return false;
  };

  // Step 0
  for (const s of ["'s'", "'s", "'"]) {
    if (w.endsWith(s)) {
      w = w.slice(0, -s.length);
      break;
    }
  }
  // Step 1a
  if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('ied') || w.endsWith('ies')) w = w.length > 4 ? w.slice(0, -2) : w.slice(0, -1);
  else if (w.endsWith('us') || w.endsWith('ss')) {
    /* unchanged */
  } else if (w.endsWith('s')) {
    if (hasVowelBefore(w.length - 2)) w = w.slice(0, -1);
  }
  if (EXCEPTIONS2.has(w)) return w;

  // Step 1b
  const s1b = ['eedly', 'ingly', 'edly', 'eed', 'ing', 'ed'].find((s) => w.endsWith(s));
  if (s1b === 'eed' || s1b === 'eedly') {
    if (inR1(s1b.length)) w = w.slice(0, -s1b.length) + 'ee';
  } else if (s1b) {
    const stem = w.slice(0, -s1b.length);
    if (hasVowelBefore(stem.length)) {
      w = stem;
      if (w.endsWith('at') || w.endsWith('bl') || w.endsWith('iz')) w += 'e';
      else if (DOUBLES.some((d) => w.endsWith(d))) w = w.slice(0, -1);
      else if (r1 >= w.length && shortSyllableAt(w, w.length)) w += 'e';
    }
  }
  // Step 1c
  if ((w.endsWith('y') || w.endsWith('Y')) && w.length > 2 && !isVowel(w, w.length - 2)) w = w.slice(0, -1) + 'i';

  // Step 2
  const step2: [string, string][] = [
    ['ization', 'ize'],
    ['ational', 'ate'],
    ['fulness', 'ful'],
    ['ousness', 'ous'],
    ['iveness', 'ive'],
    ['tional', 'tion'],
    ['biliti', 'ble'],
    ['lessli', 'less'],
    ['entli', 'ent'],
    ['ation', 'ate'],
    ['alism', 'al'],
    ['aliti', 'al'],
    ['ousli', 'ous'],
    ['iviti', 'ive'],
    ['fulli', 'ful'],
    ['enci', 'ence'],
    ['anci', 'ance'],
    ['abli', 'able'],
    ['izer', 'ize'],
    ['ator', 'ate'],
    ['alli', 'al'],
    ['bli', 'ble'],
    ['ogi', 'og'],
    ['li', ''],
  ];
  for (const [suf, rep] of step2) {
    if (!w.endsWith(suf)) continue;
    if (inR1(suf.length)) {
      if (suf === 'ogi') {
        if (w[w.length - 4] === 'l') w = w.slice(0, -3) + rep;
      } else if (suf === 'li') {
        if (LI_ENDINGS.has(w[w.length - 3])) w = w.slice(0, -2);
      } else w = w.slice(0, -suf.length) + rep;
    }
    break;
  }
  // Step 3
  const step3: [string, string][] = [
    ['ational', 'ate'],
    ['tional', 'tion'],
    ['alize', 'al'],
    ['icate', 'ic'],
    ['iciti', 'ic'],
    ['ative', ''],
    ['ical', 'ic'],
    ['ness', ''],
    ['ful', ''],
  ];
  for (const [suf, rep] of step3) {
    if (!w.endsWith(suf)) continue;
    if (inR1(suf.length)) {
      if (suf === 'ative') {
        if (inR2(suf.length)) w = w.slice(0, -suf.length);
      } else w = w.slice(0, -suf.length) + rep;
    }
    break;
  }
  // Step 4
  const step4 = ['ement', 'ance', 'ence', 'able', 'ible', 'ment', 'ant', 'ent', 'ism', 'ate', 'iti', 'ous', 'ive', 'ize', 'ion', 'al', 'er', 'ic'];
  for (const suf of step4) {
    if (!w.endsWith(suf)) continue;
    if (inR2(suf.length)) {
      if (suf === 'ion') {
        const c = w[w.length - 4];
        if (c === 's' || c === 't') w = w.slice(0, -3);
      } else w = w.slice(0, -suf.length);
    }
    break;
  }
  // Step 5
  if (w.endsWith('e')) {
    if (inR2(1) || (inR1(1) && !shortSyllableAt(w, w.length - 1))) w = w.slice(0, -1);
  } else if (w.endsWith('l')) {
    if (inR2(1) && w[w.length - 2] === 'l') w = w.slice(0, -1);
  }
  return w.replace(/Y/g, 'y');
}
