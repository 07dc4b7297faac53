/**
 * A TypeScript approximation of METEOR 1.5 (`-l en -norm`) for when Java or the jar is missing.
 *
 * What matches the jar: the normalisation steps that matter for PTB-tokenised captions (hyphens
 * between word characters become spaces, contractions and symbols are split off), exact and
 * Porter2-stem matching with the jar's stage weights, the beam-search alignment (maximise weighted
 * matches, then minimise chunks, then distance), the best reference per image, the parameters and the
 * corpus aggregation (src/metrics/meteor-stats.ts).
 *
 * What differs: no WordNet synonym and no paraphrase stage (their data ships only inside the jar), and
 * the function-word list is this project's own list of English closed-class words, not the jar's.
 * Scores are therefore slightly lower than the jar's; the measured difference on the golden fixtures
 * is asserted in test/metrics.test.ts.
 */
import { aggregateStats, emptyStats, meteorScore, METEOR_STAGE_WEIGHTS, type MeteorStats } from './meteor-stats.js';
import { stemEnglish } from './stemmer.js';

// Closed-class English words (articles, determiners, pronouns, prepositions, conjunctions,
// auxiliaries, particles) and punctuation tokens.
const FUNCTION_WORDS = new Set(
  (
    "a an the this that these those some any each every no all both either neither another such what which whose " +
    'i me my mine we us our ours you your yours he him his she her hers it its they them their theirs who whom ' +
    'myself yourself himself herself itself ourselves themselves one two ' +
    'of in on at to from by with without about above across after against along among around before behind below ' +
    'beneath beside besides between beyond down during except for inside into near off onto out outside over past ' +
    'since through throughout toward towards under underneath until up upon within via ' +
    'and or but nor so yet if because while although though as than whether then there here when where how why ' +
    'is are was were be been being am do does did done have has had having will would shall should can could may ' +
    'might must not also very just only more most other ' +
    "' 's s 't n't 're 'm 've 'd 'll , . ; : ! ? \" ( ) - -- ... $ % & # @ * / -lrb- -rrb- -lsb- -rsb- -lcb- -rcb-"
  ).split(/\s+/),
);

const ALPHA = String.raw`\p{L}`;
const ALNUM = String.raw`\p{L}0-9`;

/** METEOR-style normalisation of an already tokenised, lower-case caption into words. */
export function meteorWords(line: string): string[] {
  let s = ` ${line.toLowerCase()} `;
  // symbols other than . ' ` , - and quotes become separate tokens
  s = s.replace(new RegExp(`([^${ALNUM}\\s.'\`,\\-\u2018\u2019])`, 'gu'), ' $1 ');
  // commas, except inside numbers
  s = s.replace(/([^0-9]),([^0-9])/g, '$1 , $2').replace(/([0-9]),([^0-9])/g, '$1 , $2').replace(/([^0-9]),([0-9])/g, '$1 , $2');
  // quotes and dashes
  s = s.replace(/[`\u2018\u2019]/g, "'").replace(/[\u201C\u201D]|''/g, ' " ');
  s = s.replace(/\u2013/g, '-').replace(/--/g, '-');
  // a hyphen between word characters separates the words (t-shirt -> t shirt)
  s = s.replace(new RegExp(`([${ALNUM}.])-(?=[${ALNUM}])`, 'gu'), '$1 ');
  // English contractions split to the right (n't -> n 't, 's -> ' s)
  s = s.replace(new RegExp(`([^${ALPHA}])'(?=[^${ALPHA}])`, 'gu'), "$1 ' ");
  s = s.replace(new RegExp(`([^${ALPHA}0-9])'(?=[${ALPHA}])`, 'gu'), "$1 ' ");
  s = s.replace(new RegExp(`([${ALPHA}])'(?=[^${ALPHA}])`, 'gu'), "$1 ' ");
  s = s.replace(new RegExp(`([${ALPHA}])'(?=[${ALPHA}])`, 'gu'), "$1 '");
  s = s.replace(/([0-9])'(?=s)/g, "$1 '");
  const words = s.split(/\s+/).filter((w) => w.length > 0);
  const out: string[] = [];
  words.forEach((w, i) => {
    if (w.length > 1 && w.endsWith('.')) {
      const pre = w.slice(0, -1);
      const next = words[i + 1] ?? '';
      if (pre.includes('.') && new RegExp(`[${ALPHA}]`, 'u').test(pre)) out.push(w.replaceAll('.', ''));
      else if (/^\p{Ll}/u.test(next) || pre.length === 1) out.push(w);
      else out.push(pre, '.');
    } else out.push(w);
  });
  return out;
}

interface Match {
  test: number;
  ref: number;
  stage: number;
}

interface Path {
  usedTest: boolean[];
  usedRef: boolean[];
  chosen: (Match | null)[];
  weighted: number;
  chunks: number;
  lastTestEnd: number;
  distance: number;
}

const BEAM = 40;

function better(a: Path, b: Path): number {
  if (a.weighted !== b.weighted) return b.weighted - a.weighted;
  if (a.chunks !== b.chunks) return a.chunks - b.chunks;
  return a.distance - b.distance;
}

function clonePath(p: Path): Path {
  return { ...p, usedTest: [...p.usedTest], usedRef: [...p.usedRef], chosen: [...p.chosen] };
}

/** Aligns a candidate (test) to one reference and returns the jar-style statistics. */
export function alignStats(test: readonly string[], ref: readonly string[]): MeteorStats {
  const identical = test.length === ref.length && test.every((w, i) => w === ref[i]);
  const testStems = test.map(stemEnglish);
  const refStems = ref.map(stemEnglish);
  // candidate matches by reference position
  const byRef: Match[][] = ref.map(() => []);
  const testCover = new Array<number>(test.length).fill(0);
  for (let j = 0; j < ref.length; j++) {
    for (let i = 0; i < test.length; i++) {
      let stage = -1;
      if (test[i] === ref[j]) stage = 0;
      else if (!identical && testStems[i] === refStems[j]) stage = 1;
      if (stage < 0) continue;
      byRef[j].push({ test: i, ref: j, stage });
      testCover[i]++;
    }
  }
  const start: Path = {
    usedTest: new Array<boolean>(test.length).fill(false),
    usedRef: new Array<boolean>(ref.length).fill(false),
    chosen: new Array<Match | null>(ref.length).fill(null),
    weighted: 0,
    chunks: 0,
    lastTestEnd: -1,
    distance: 0,
  };
  // unambiguous one-to-one matches are fixed up front
  for (let j = 0; j < ref.length; j++) {
    if (byRef[j].length === 1 && testCover[byRef[j][0].test] === 1) {
      const m = byRef[j][0];
      start.chosen[j] = m;
      start.usedRef[j] = true;
      start.usedTest[m.test] = true;
    }
  }
  const take = (p: Path, m: Match) => {
    p.weighted += 2 * METEOR_STAGE_WEIGHTS[m.stage];
    if (p.lastTestEnd !== -1 && m.test !== p.lastTestEnd) p.chunks++;
    p.lastTestEnd = m.test + 1;
  };
  let paths: Path[] = [start];
  for (let j = 0; j <= ref.length; j++) {
    const next: Path[] = [];
    paths.sort(better);
    for (const path of paths.slice(0, BEAM)) {
      if (j === ref.length) {
        if (path.lastTestEnd !== -1) path.chunks++;
        next.push(path);
        continue;
      }
      if (path.usedRef[j]) {
        const m = path.chosen[j];
        if (m) {
          take(path, m);
          path.distance += Math.abs(m.ref - m.test);
        }
        next.push(path);
        continue;
      }
      for (const m of byRef[j]) {
        if (path.usedTest[m.test]) continue;
        const np = clonePath(path);
        np.usedTest[m.test] = true;
        np.usedRef[j] = true;
        np.chosen[j] = m;
        take(np, m);
        path.distance += Math.abs(m.ref - m.test); // as the jar does: charged to the path that skips
        next.push(np);
      }
      if (path.lastTestEnd !== -1) {
        path.chunks++;
        path.lastTestEnd = -1;
      }
      next.push(path);
    }
    paths = next;
  }
  paths.sort(better);
  const best = paths[0];

  const s = emptyStats();
  s.testLength = test.length;
  s.refLength = ref.length;
  const testFn = test.map((w) => FUNCTION_WORDS.has(w));
  const refFn = ref.map((w) => FUNCTION_WORDS.has(w));
  s.testFunctionWords = testFn.filter(Boolean).length;
  s.refFunctionWords = refFn.filter(Boolean).length;
  let lastEnd = -1;
  for (const m of best.chosen) {
    if (!m) {
      if (lastEnd !== -1) {
        s.chunks++;
        lastEnd = -1;
      }
      continue;
    }
    if (testFn[m.test]) s.testFunction[m.stage]++;
    else s.testContent[m.stage]++;
    if (refFn[m.ref]) s.refFunction[m.stage]++;
    else s.refContent[m.stage]++;
    s.testMatches++;
    s.refMatches++;
    if (lastEnd !== -1 && m.test !== lastEnd) s.chunks++;
    lastEnd = m.test + 1;
  }
  if (lastEnd !== -1) s.chunks++;
  return s;
}

/** The statistics of the best-scoring reference, as the jar picks it for a `SCORE` line. */
export function meteorSegmentStats(refs: readonly string[], cand: string): MeteorStats {
  const test = meteorWords(cand);
  let best: MeteorStats | null = null;
  let bestScore = -Infinity;
  for (const r of refs) {
    const st = alignStats(test, meteorWords(r));
    const sc = meteorScore(st);
    if (sc > bestScore) {
      best = st;
      bestScore = sc;
    }
  }
  if (!best) throw new RangeError('meteor: no references');
  return best;
}

/** Native METEOR approximation: corpus score (jar-style aggregation) and per-image scores. */
export function meteorNative(refs: readonly (readonly string[])[], cands: readonly string[]): { score: number; perImage: number[] } {
  if (refs.length !== cands.length) throw new RangeError(`meteor: ${refs.length} reference sets but ${cands.length} candidates`);
  const stats = cands.map((c, i) => meteorSegmentStats(refs[i], c));
  return { score: meteorScore(aggregateStats(stats)), perImage: stats.map(meteorScore) };
}
