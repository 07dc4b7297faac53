/**
 * The beam-search parity fixture (test/fixtures/decoder/beam-parity.ts): the TypeScript search still returns
 * exactly the stored n-best lists. The trainer's pytest suite checks its Python search against the same file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { makeParityFixture, type ParityFixture } from './fixtures/decoder/beam-parity.js';

const FIXTURE = new URL('./fixtures/decoder/beam-parity.json', import.meta.url);

test('the committed beam-parity fixture is what the TypeScript search gives today (>= 50 cases, every rule)', async () => {
  const committed = JSON.parse(readFileSync(FIXTURE, 'utf8')) as ParityFixture;
  assert.ok(committed.cases.length >= 50);
  const fresh = await makeParityFixture(committed.cases.length);
  assert.equal(fresh.cases.length, committed.cases.length);
  fresh.cases.forEach((c, i) => assert.deepEqual(c, committed.cases[i], c.name));
  // The cases exercise what the fixture claims: ties, impossible tokens, n-best lists, early stops and each rule off.
  const all = committed.cases.flatMap((c) => c.images.map((im) => ({ c, im })));
  assert.ok(all.some(({ im }) => Object.values(im.steps).some((lp) => lp.includes(null))), 'impossible tokens');
  assert.ok(all.some(({ im }) => im.expected.length >= 3), 'n-best lists');
  assert.ok(all.some(({ c, im }) => im.expected[0].tokens.length < c.config.maxLength), 'early finishing');
  assert.ok(all.some(({ im }) => Object.values(im.steps).some((lp) => new Set(lp).size < lp.length)), 'ties');
  for (const rule of committed.cases[0].config.rules) {
    assert.ok(committed.cases.some((c) => !c.config.rules.includes(rule)), `a case with ${rule} off`);
  }
});
