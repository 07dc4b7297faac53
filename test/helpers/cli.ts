/** Runs one CLI command in this process on a fresh commander program, with console output captured. */
import { mock } from 'node:test';
import { Command } from 'commander';

export interface CliRun {
  code: number;
  stdout: string[];
  stderr: string[];
}

export async function runCommand(register: (program: Command) => void, argv: string[]): Promise<CliRun> {
  const program = new Command();
  program.exitOverride();
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  register(program);
  const stdout: string[] = [];
  const stderr: string[] = [];
  const log = mock.method(console, 'log', (...a: unknown[]) => void stdout.push(a.join(' ')));
  const err = mock.method(console, 'error', (...a: unknown[]) => void stderr.push(a.join(' ')));
  process.exitCode = undefined;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return { code: Number(process.exitCode ?? 0), stdout, stderr };
  } finally {
    log.mock.restore();
    err.mock.restore();
    process.exitCode = undefined;
  }
}
