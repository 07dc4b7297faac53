import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureEncoderModel } from '../src/encoder/cache.js';
import { ENCODER_GEOMETRY, featureMapFloats, type FeatureGeometry } from '../src/encoder/geometry.js';
import { decodeModel, type ValueInfo } from '../src/onnx/proto.js';
import { FeatureStoreReader, FeatureStoreWriter, readFeatureIndex } from '../src/data/feature-store.js';
import { ErrorCodes, PixelInfoError } from '../src/errors.js';

function tmp(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'px-geometry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const dims = (v: ValueInfo) => v.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));

test('the converter builds the graph from the geometry and records it in the manifest', async (t) => {
  const dir = tmp(t);
  const model = await ensureEncoderModel(dir);
  assert.deepEqual(model.manifest.geometry, ENCODER_GEOMETRY);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'encoder', 'manifest.json'), 'utf8')).geometry, ENCODER_GEOMETRY);

  const outputs = decodeModel(model.bytes).graph!.output!;
  const { regions, channels, classes } = ENCODER_GEOMETRY;
  assert.deepEqual(outputs.map(dims), [
    ['batch', regions, channels],
    ['batch', channels],
    ['batch', classes],
  ]);
  assert.equal(regions, ENCODER_GEOMETRY.grid[0] * ENCODER_GEOMETRY.grid[1]);
});

test('a cached encoder whose manifest records no geometry is rebuilt (same bytes)', async (t) => {
  const dir = tmp(t);
  const first = await ensureEncoderModel(dir);
  const manifestPath = join(dir, 'encoder', 'manifest.json');
  const { geometry: _, ...withoutGeometry } = JSON.parse(readFileSync(manifestPath, 'utf8'));
  writeFileSync(manifestPath, JSON.stringify(withoutGeometry));

  const again = await ensureEncoderModel(dir);
  assert.equal(again.action, 'rebuilt');
  assert.match(again.reason ?? '', /geometry/);
  assert.deepEqual(again.manifest.geometry, ENCODER_GEOMETRY);
  assert.equal(again.manifest.files['resnet50.onnx'].sha256, first.manifest.files['resnet50.onnx'].sha256);
});

test('the feature store sizes its rows by the geometry it records in its index', (t) => {
  const dir = tmp(t);
  const geometry: FeatureGeometry = { grid: [2, 3], regions: 6, channels: 4 };
  const names = ['a.jpg', 'b.jpg'];
  const { writer } = FeatureStoreWriter.open(dir, {
    dataset: 'toy',
    encoder: { name: 'toy', source: 'toy', modelSha256: '0'.repeat(64) },
    geometry,
    imageNames: names,
  });
  const spatial = Float32Array.from({ length: names.length * featureMapFloats(geometry) }, (_, i) => i % 7);
  const pooled = Float32Array.from({ length: names.length * geometry.channels }, (_, i) => -i);
  writer.append(names.length, [spatial, pooled]);
  writer.close();

  const index = readFeatureIndex(dir);
  assert.deepEqual([index.grid, index.regions, index.channels], [[2, 3], 6, 4]);
  const reader = new FeatureStoreReader(dir);
  assert.deepEqual(reader.read('b.jpg', 'spatial'), spatial.subarray(featureMapFloats(geometry)));
  assert.deepEqual(reader.read('b.jpg', 'pooled'), pooled.subarray(geometry.channels));
});

test('a store index whose regions are not rows × cols of its grid is refused', (t) => {
  const dir = tmp(t);
  const { writer } = FeatureStoreWriter.open(dir, {
    dataset: 'toy',
    encoder: { name: 'toy', source: 'toy', modelSha256: '0'.repeat(64) },
    geometry: ENCODER_GEOMETRY,
    imageNames: ['a.jpg'],
  });
  writer.close();
  const indexPath = join(dir, 'index.json');
  writeFileSync(indexPath, JSON.stringify({ ...JSON.parse(readFileSync(indexPath, 'utf8')), regions: ENCODER_GEOMETRY.regions - 1 }));
  assert.throws(
    () => readFeatureIndex(dir),
    (err) => err instanceof PixelInfoError && err.code === ErrorCodes.FEATURE_STORE_INVALID && /regions/.test(err.message),
  );
});
