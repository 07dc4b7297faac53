/**
 * The page's wording of the image–text matcher's numbers (web/src/confidence.ts, web/src/library.ts): a
 * caption's confidence as a percentage, "Low confidence" below the documented threshold (LOW_CONFIDENCE, the
 * same constant the API documents), the match percentage of a search by meaning, and the search status line
 * in each mode.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeConfidence, LOW_CONFIDENCE, matchText } from '../web/src/confidence.js';
import { summary } from '../web/src/library.js';
import { LOW_CONFIDENCE as DOCUMENTED } from '../src/server/limits.js';

test('confidence: a percentage; "Low confidence" below the documented threshold, said in words', () => {
  assert.equal(LOW_CONFIDENCE, DOCUMENTED);
  assert.equal(LOW_CONFIDENCE, 0.5);
  assert.equal(describeConfidence(undefined), null);
  assert.equal(describeConfidence(null), null);
  assert.equal(describeConfidence(Number.NaN), null);
  const high = describeConfidence(0.823)!;
  assert.deepEqual([high.low, high.percent, high.text], [false, 82, 'Confidence 82%']);
  assert.match(high.label, /^Confidence: 82% that this caption describes the image/);
  const low = describeConfidence(0.31)!;
  assert.deepEqual([low.low, low.percent, low.text], [true, 31, 'Low confidence · 31%']);
  assert.match(low.label, /^Low confidence: 31% .*below 50% it may be wrong/);
  assert.equal(describeConfidence(0.5)!.low, false, 'the threshold itself is not low');
  assert.equal(describeConfidence(0.4999)!.low, true);
  assert.equal(describeConfidence(0.4999)!.percent, 50, 'rounded for display, judged unrounded');
  assert.equal(describeConfidence(1.2)!.percent, 100);
  assert.deepEqual(matchText(0.876), { text: 'Match 88%', label: 'Matches the search: 88% (image–text matcher)' });
});

test('search status line: by meaning the images are ranked, by words they match', () => {
  assert.equal(summary({ count: 0, total: 0, mode: 'meaning' }, 'dog'), 'The library is empty: caption an image first.');
  assert.equal(summary({ count: 3, total: 3, mode: 'meaning' }, 'a puppy'), '3 images ranked by how well “a puppy” describes them (of 3).');
  assert.equal(summary({ count: 1, total: 3, mode: 'words' }, 'dog'), '1 image matching “dog” (of 3).');
  assert.equal(summary({ count: 3, total: 3, mode: 'meaning' }, ''), '3 images most recent (of 3).');
  assert.equal(summary({ count: 0, total: 3, mode: 'words' }, 'zebra'), 'No images match “zebra” (the library holds 3).');
});
