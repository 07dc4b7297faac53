/**
 * The `pixel-info` command line: each command lives in ./commands and registers itself here. Importing this
 * module runs nothing; bin/pixel-info.js calls main().
 */
import { Command, CommanderError } from 'commander';
import { PixelInfoError, asPixelInfoError, ErrorCodes } from '../errors.js';
import { registerClassify } from './commands/classify.js';
import { registerFeatures } from './commands/features.js';
import { registerEncoder } from './commands/encoder.js';
import { registerPrepare } from './commands/prepare.js';
import { registerCaption } from './commands/caption.js';
import { registerScore } from './commands/score.js';
import { registerServe } from './commands/serve.js';
import { registerEval } from './commands/eval.js';
import { registerEvalMatch } from './commands/eval-match.js';
import { registerTrain } from './commands/train.js';
import { registerWorker } from './commands/worker.js';
import { registerJobs } from './commands/jobs.js';
import { registerKeys } from './commands/keys.js';
import { registerMatch } from './commands/match.js';
import { registerAudit } from './commands/audit.js';

export function buildProgram(): Command {
  const program = new Command('pixel-info')
    .description('Image captioning: ResNet50 + soft-attention LSTM, in TypeScript')
    .version('0.1.0')
    .exitOverride()
    .showHelpAfterError();
  registerClassify(program);
  registerFeatures(program);
  registerEncoder(program);
  registerPrepare(program);
  registerCaption(program);
  registerMatch(program);
  registerScore(program);
  registerServe(program);
  registerEval(program);
  registerEvalMatch(program);
  registerTrain(program);
  registerWorker(program);
  registerJobs(program);
  registerKeys(program);
  registerAudit(program);
  return program;
}

/** Runs the command line `argv` (node's layout: the executable and the script first) and sets process.exitCode. */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // help/version exit 0; every other commander error is a usage error
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    // Typed errors and failed file-system calls are the user's to fix: one line, no stack trace.
    const known = asPixelInfoError(err);
    if (err instanceof PixelInfoError || known.code === ErrorCodes.IO_ERROR) {
      console.error(`pixel-info: ${known.code}: ${known.message}`);
      process.exitCode = known.code === ErrorCodes.INVALID_ARGUMENT ? 2 : 1;
      return;
    }
    throw err;
  }
}
