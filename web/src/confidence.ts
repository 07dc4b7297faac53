/**
 * How a caption's confidence is shown: the image–text matcher's probability that the caption describes the
 * image, as a percentage, and below LOW_CONFIDENCE (src/server/limits.ts, the threshold the API documents) as a
 * "Low confidence" badge. The badge says it in words as well as in colour, so screen readers and people who do
 * not see the colour get the same. Pure functions plus one element builder; nothing runs at import time.
 */
import { LOW_CONFIDENCE } from '../../src/server/limits.js';
import { h } from './dom.js';

export { LOW_CONFIDENCE };

export interface ConfidenceText {
  low: boolean;
  /** 0..100, rounded. */
  percent: number;
  /** What the badge shows: "Low confidence · 31%" or "Confidence 82%". */
  text: string;
  /** The longer form, for title and screen readers. */
  label: string;
}

/** The wording of a confidence (0..1), or null when there is none (captioned without a matcher). */
export function describeConfidence(confidence: number | null | undefined): ConfidenceText | null {
  if (confidence === null || confidence === undefined || !Number.isFinite(confidence)) return null;
  const percent = Math.round(Math.max(0, Math.min(1, confidence)) * 100);
  const low = confidence < LOW_CONFIDENCE;
  return {
    low,
    percent,
    text: low ? `Low confidence · ${percent}%` : `Confidence ${percent}%`,
    label: `${low ? 'Low confidence: ' : 'Confidence: '}${percent}% that this caption describes the image (image–text matcher)${
      low ? `; below ${Math.round(LOW_CONFIDENCE * 100)}% it may be wrong` : ''
    }`,
  };
}

/**
 * A badge for `confidence`, or null when there is none. Screen readers read the label (a visually hidden span)
 * instead of the short visible text.
 */
export function confidenceBadge(confidence: number | null | undefined, extraClass = ''): HTMLElement | null {
  const c = describeConfidence(confidence);
  if (!c) return null;
  return h(
    'span',
    { className: ['confidence', c.low ? 'low' : '', extraClass].filter(Boolean).join(' '), title: c.label, dataset: { percent: String(c.percent) } },
    h('span', { textContent: c.text, attrs: { 'aria-hidden': 'true' } }),
    h('span', { className: 'visually-hidden', textContent: c.label }),
  );
}

/** "Match 87%": how well a search query describes an image (search by meaning). */
export function matchText(score: number): { text: string; label: string } {
  const percent = Math.round(Math.max(0, Math.min(1, score)) * 100);
  return { text: `Match ${percent}%`, label: `Matches the search: ${percent}% (image–text matcher)` };
}
