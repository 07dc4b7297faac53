/** METEOR: the toolkit's jar when it can run, otherwise the native approximation. */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { meteorJarIfUsable, meteorWithJar, METEOR_JAR_ENV } from './meteor-jar.js';
import { meteorNative } from './meteor-native.js';

/** auto: the jar if Java and the jar are found (native if it fails), else native; jar: the jar or an error; off: skip. */
export type MeteorMode = 'auto' | 'jar' | 'native' | 'off';
export const METEOR_MODES: readonly MeteorMode[] = ['auto', 'jar', 'native', 'off'];

export interface MeteorResult {
  score: number;
  perImage: number[];
  method: 'jar' | 'native';
}

/** `refs[i]`/`cands[i]`: image i's tokenised references and candidate, as strings. Null when mode is off. */
export async function meteor(refs: readonly (readonly string[])[], cands: readonly string[], mode: MeteorMode = 'auto'): Promise<MeteorResult | null> {
  if (mode === 'off') return null;
  if (mode !== 'native') {
    const jar = meteorJarIfUsable();
    if (jar) {
      try {
        const r = await meteorWithJar(jar, refs, cands);
        return { score: r.score, perImage: r.perImage, method: 'jar' };
      } catch (err) {
        if (mode === 'jar') throw err;
        process.emitWarning(`METEOR jar failed (${(err as Error).message}); using the native approximation`);
      }
    }
    if (mode === 'jar') {
      throw new PixelInfoError(
        ErrorCodes.PYTHON_UNAVAILABLE,
        `METEOR jar not usable: needs Java on PATH and meteor-1.5.jar (set ${METEOR_JAR_ENV}, or pip install pycocoevalcap)`,
        { subject: 'meteor' },
      );
    }
  }
  return { ...meteorNative(refs, cands), method: 'native' };
}
