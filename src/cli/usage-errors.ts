/**
 * Commands whose inputs are files named on the command line (score's --refs, eval's --features) treat some
 * PixelInfoErrors as usage errors: one line naming the command, exit 2. Which codes count is the command's call.
 */
import { PixelInfoError, type ErrorCode } from '../errors.js';

export function exitTwoOn<T>(command: string, codes: ReadonlySet<ErrorCode>, run: (opts: T) => Promise<void>): (opts: T) => Promise<void> {
  return async (opts) => {
    try {
      await run(opts);
    } catch (err) {
      if (err instanceof PixelInfoError && codes.has(err.code)) {
        console.error(`pixel-info ${command}: ${err.code}: ${err.message}`);
        process.exitCode = 2;
        return;
      }
      throw err;
    }
  };
}
