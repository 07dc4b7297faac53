/**
 * `pixel-info train` / `pixel-info export-model`: run the PyTorch trainer (trainer/) from the CLI.
 * Training needs autograd, so it is Python; this finds a Python that has torch and says clearly
 * what is missing when none does. Every option after the command goes to the trainer unchanged.
 */
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { PixelInfoError, ErrorCodes } from '../../errors.js';

const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The first of $PIXEL_INFO_PYTHON, /usr/bin/python3, python3 that can import torch. */
export function findTorchPython(): string {
  const candidates = process.env.PIXEL_INFO_PYTHON ? [process.env.PIXEL_INFO_PYTHON] : ['/usr/bin/python3', 'python3'];
  const tried: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', 'import torch, numpy; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return python;
    tried.push(r.error ? `${python}: not found` : `${python}: ${(r.stderr.trim().split('\n').pop() ?? 'import torch failed').slice(0, 200)}`);
  }
  throw new PixelInfoError(
    ErrorCodes.PYTHON_UNAVAILABLE,
    `training needs Python 3 with PyTorch and numpy (tried ${tried.join('; ')}). ` +
      'Install them (Debian: apt-get install python3-torch python3-numpy libopenblas0-pthread; or pip install torch numpy) ' +
      'or point PIXEL_INFO_PYTHON at a Python that has them.',
  );
}

function runTrainerModule(module: string, args: string[]): Promise<number> {
  const python = findTorchPython();
  return new Promise((resolve) => {
    const child = spawn(python, ['-m', module, ...args], { cwd: PACKAGE_ROOT, stdio: 'inherit', env: { ...process.env, PYTHONUNBUFFERED: '1' } });
    child.on('close', (code) => resolve(code ?? 1));
  });
}

function passThrough(program: Command, name: string, module: string, description: string): void {
  program
    .command(name)
    .description(`${description} (runs python3 -m ${module}; all options go to it, see --help)`)
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action(async (args: string[]) => {
      process.exitCode = await runTrainerModule(module, args);
    });
}

export function registerTrain(program: Command): void {
  passThrough(program, 'train', 'trainer.train', 'train the attention decoder on a feature store and captions.json (cross-entropy, then SCST)');
  passThrough(program, 'export-model', 'trainer.export', 'export a trained checkpoint to the ONNX model directory the captioner loads');
}
