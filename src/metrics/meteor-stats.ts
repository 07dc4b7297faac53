/**
 * METEOR 1.5 sufficient statistics and scoring, as the meteor-1.5.jar computes them with `-l en`
 * (alpha 0.85, beta 0.2, gamma 0.6, delta 0.75; module weights exact 1.0, stem 0.6, synonym 0.8,
 * paraphrase 0.6). The jar prints these statistics for every `SCORE` line and scores the corpus from
 * their sum (`EVAL`), where a perfectly matched segment adds no chunks: the same aggregation is used
 * for the native approximation.
 */

export const METEOR_PARAMS = { alpha: 0.85, beta: 0.2, gamma: 0.6, delta: 0.75 } as const;
export const METEOR_STAGE_WEIGHTS = [1.0, 0.6, 0.8, 0.6] as const;

export interface MeteorStats {
  testLength: number;
  refLength: number;
  testFunctionWords: number;
  refFunctionWords: number;
  /** Per stage (exact, stem, synonym, paraphrase). */
  testContent: number[];
  refContent: number[];
  testFunction: number[];
  refFunction: number[];
  chunks: number;
  testMatches: number;
  refMatches: number;
}

export function emptyStats(): MeteorStats {
  return {
    testLength: 0,
    refLength: 0,
    testFunctionWords: 0,
    refFunctionWords: 0,
    testContent: [0, 0, 0, 0],
    refContent: [0, 0, 0, 0],
    testFunction: [0, 0, 0, 0],
    refFunction: [0, 0, 0, 0],
    chunks: 0,
    testMatches: 0,
    refMatches: 0,
  };
}

/** Parses the 23 numbers the jar prints for a `SCORE` line. */
export function parseStats(line: string): MeteorStats {
  const v = line.trim().split(/\s+/).map(Number);
  if (v.length !== 23 || v.some((x) => !Number.isFinite(x))) throw new Error(`unexpected METEOR statistics line: ${line}`);
  const s = emptyStats();
  [s.testLength, s.refLength, s.testFunctionWords, s.refFunctionWords] = v;
  for (let k = 0; k < 4; k++) {
    s.testContent[k] = v[4 + 4 * k];
    s.refContent[k] = v[5 + 4 * k];
    s.testFunction[k] = v[6 + 4 * k];
    s.refFunction[k] = v[7 + 4 * k];
  }
  [s.chunks, s.testMatches, s.refMatches] = v.slice(20);
  return s;
}

function isPerfect(s: MeteorStats): boolean {
  const t = s.testContent.reduce((a, b) => a + b, 0) + s.testFunction.reduce((a, b) => a + b, 0);
  const r = s.refContent.reduce((a, b) => a + b, 0) + s.refFunction.reduce((a, b) => a + b, 0);
  return t === s.testLength && r === s.refLength && s.chunks === 1;
}

/** The METEOR score of one set of statistics. */
export function meteorScore(s: MeteorStats): number {
  const { alpha, beta, gamma, delta } = METEOR_PARAMS;
  let testW = 0;
  let refW = 0;
  for (let k = 0; k < 4; k++) {
    testW += METEOR_STAGE_WEIGHTS[k] * (delta * s.testContent[k] + (1 - delta) * s.testFunction[k]);
    refW += METEOR_STAGE_WEIGHTS[k] * (delta * s.refContent[k] + (1 - delta) * s.refFunction[k]);
  }
  const testLen = delta * (s.testLength - s.testFunctionWords) + (1 - delta) * s.testFunctionWords;
  const refLen = delta * (s.refLength - s.refFunctionWords) + (1 - delta) * s.refFunctionWords;
  const precision = testLen > 0 ? testW / testLen : 0;
  const recall = refLen > 0 ? refW / refLen : 0;
  if (precision <= 0 || recall <= 0) return 0;
  const fMean = (precision * recall) / (alpha * precision + (1 - alpha) * recall);
  const frag = isPerfect(s) ? 0 : s.chunks / ((s.testMatches + s.refMatches) / 2);
  return fMean * (1 - gamma * frag ** beta);
}

/** Sums segment statistics the way the jar's `EVAL` does (perfect segments add no chunks). */
export function aggregateStats(all: readonly MeteorStats[]): MeteorStats {
  const t = emptyStats();
  for (const s of all) {
    t.testLength += s.testLength;
    t.refLength += s.refLength;
    t.testFunctionWords += s.testFunctionWords;
    t.refFunctionWords += s.refFunctionWords;
    for (let k = 0; k < 4; k++) {
      t.testContent[k] += s.testContent[k];
      t.refContent[k] += s.refContent[k];
      t.testFunction[k] += s.testFunction[k];
      t.refFunction[k] += s.refFunction[k];
    }
    if (!isPerfect(s)) t.chunks += s.chunks;
    t.testMatches += s.testMatches;
    t.refMatches += s.refMatches;
  }
  return t;
}
