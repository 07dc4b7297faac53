/**
 * Commands whose inputs are files named on the command line (score's --refs, eval's --features) treat some
 * PixelInfoErrors as usage errors: one line naming the command, exit 2. Which codes count is the command's call.
 */
import { ErrorCodes, PixelInfoError, type ErrorCode } from '../errors.js';

/** What the dataset commands (eval, eval-match) treat as usage errors: a wrong option, folder, model or store. */
export const DATASET_USAGE_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCodes.INVALID_ARGUMENT,
  ErrorCodes.FILE_NOT_FOUND,
  ErrorCodes.DATASET_NOT_FOUND,
  ErrorCodes.MODEL_NOT_FOUND,
  ErrorCodes.FEATURE_STORE_INVALID,
]);

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
