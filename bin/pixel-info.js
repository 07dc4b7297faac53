#!/usr/bin/env node
// The `pixel-info` command. From a clone (src/ present) it runs the TypeScript CLI through tsx, so a clone needs
// no build step; an installed package has no src/ and runs the built dist/cli.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src', 'cli', 'index.ts');
let entry = join(root, 'dist', 'cli', 'index.js');
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  entry = source;
}
const { main } = await import(pathToFileURL(entry).href);
await main(process.argv);
