/**
 * Command-line inputs → image files: files as given, folders walked recursively for image extensions, and
 * glob patterns (`*`, `?`, `[...]`, `**`) expanded here, since Node 20 has no fs.glob and a quoted pattern or a
 * Windows shell leaves them unexpanded. Patterns the shell already expanded arrive as plain files.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export const IMAGE_EXTENSIONS = /\.(jpe?g|png|webp|gif|tiff?|avif)$/i;

export interface ExpandedInputs {
  /** In argument order, folders and pattern matches sorted by name, duplicates removed. */
  files: string[];
  /** Folders and patterns that gave no image (files are always kept: loading them reports what is wrong). */
  empty: string[];
}

const GLOB_CHARS = /[*?[]/;

export async function expandInputs(args: readonly string[]): Promise<ExpandedInputs> {
  const files: string[] = [];
  const seen = new Set<string>();
  const empty: string[] = [];
  const add = (f: string) => {
    if (!seen.has(f)) {
      seen.add(f);
      files.push(f);
    }
  };
  for (const arg of args) {
    const st = await stat(arg).catch(() => undefined);
    let found: string[];
    if (st?.isDirectory()) found = await walkImages(arg);
    else if (!st && GLOB_CHARS.test(arg)) found = await expandGlob(arg);
    else {
      add(arg); // a file, or a missing path the loader will report
      continue;
    }
    if (found.length === 0) empty.push(arg);
    found.forEach(add);
  }
  return { files, empty };
}

/** Image files under `dir`, at any depth, sorted; hidden entries and symlinked folders are skipped. */
export async function walkImages(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walkImages(path)));
    else if ((entry.isFile() || entry.isSymbolicLink()) && IMAGE_EXTENSIONS.test(entry.name)) out.push(path);
  }
  return out;
}

/** Files matching a pattern, folders among the matches walked for images. */
export async function expandGlob(pattern: string): Promise<string[]> {
  const segments = pattern.replace(/\\/g, '/').split('/');
  const absolute = segments[0] === '';
  const root = absolute ? '/' : '.';
  const matches: string[] = [];
  const visit = async (dir: string, shown: string, i: number): Promise<void> => {
    if (i === segments.length) {
      matches.push(shown);
      return;
    }
    const segment = segments[i];
    if (segment === '' || segment === '.') return visit(dir, shown, i + 1);
    if (segment === '**') {
      await visit(dir, shown, i + 1);
      for (const entry of await listDir(dir)) {
        if (entry.isDirectory() && !entry.name.startsWith('.')) await visit(join(dir, entry.name), joinShown(shown, entry.name), i);
      }
      return;
    }
    if (!GLOB_CHARS.test(segment)) {
      const next = join(dir, segment);
      if (await stat(next).catch(() => undefined)) await visit(next, joinShown(shown, segment), i + 1);
      return;
    }
    const re = segmentRegExp(segment);
    for (const entry of await listDir(dir)) {
      if (entry.name.startsWith('.') && !segment.startsWith('.')) continue;
      if (re.test(entry.name)) await visit(join(dir, entry.name), joinShown(shown, entry.name), i + 1);
    }
  };
  await visit(root, absolute ? '/' : '', absolute ? 1 : 0);
  const files: string[] = [];
  for (const match of [...new Set(matches)]) {
    const st = await stat(match).catch(() => undefined);
    if (st?.isDirectory()) files.push(...(await walkImages(match)));
    else if (st?.isFile() && IMAGE_EXTENSIONS.test(match)) files.push(match);
  }
  return files;
}

async function listDir(dir: string) {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function joinShown(shown: string, name: string): string {
  return shown === '' ? name : shown.endsWith('/') ? shown + name : `${shown}/${name}`;
}

/** One path segment of a glob as an anchored RegExp: `*` any run, `?` one character, `[...]`/`[!...]` a class. */
export function segmentRegExp(segment: string): RegExp {
  let re = '';
  for (let i = 0; i < segment.length; i++) {
    const ch = segment[i];
    if (ch === '*') re += '[^/]*';
    else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const close = segment.indexOf(']', i + 2);
      if (close === -1) {
        re += '\\[';
        continue;
      }
      let body = segment.slice(i + 1, close);
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += `[${body.replace(/\\/g, '\\\\')}]`;
      i = close;
    } else re += ch.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
