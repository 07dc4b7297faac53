/**
 * Reference captions typed by the user (#references, one per line) and the sentence BLEU-1..4 and CIDEr-D of the
 * selected caption against them (`POST /v1/score`), in the #scores table. Scoring waits for a pause in typing,
 * and only the newest request's answer is shown.
 */
import type { SentenceScores } from '../../src/metrics/sentence.js';
import { postScore } from './api.js';
import { byId } from './dom.js';

/** Typing pause before scoring, ms. */
const DEBOUNCE_MS = 250;

export interface ReferenceScores {
  /** Scores the current caption again after the pause (also called on each keystroke). */
  schedule(): void;
}

/** `caption()` gives the caption to score (null: none yet); failures go to `onError`. */
export function createReferenceScores(caption: () => string | null, onError: (err: unknown) => void): ReferenceScores {
  const textarea = byId('references', HTMLTextAreaElement);
  const table = byId('scores', HTMLTableElement);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let latest = 0;

  async function score(): Promise<void> {
    const references = referenceLines(textarea.value);
    const candidate = caption();
    const request = ++latest;
    if (!candidate || references.length === 0) {
      table.hidden = true;
      return;
    }
    try {
      const scores = await postScore(references, candidate);
      if (request !== latest) return;
      for (const cell of table.querySelectorAll<HTMLTableCellElement>('td[data-metric]')) {
        cell.textContent = scores[cell.dataset.metric as keyof SentenceScores].toFixed(3);
      }
      table.hidden = false;
    } catch (err) {
      if (request === latest) onError(err);
    }
  }

  function schedule(): void {
    clearTimeout(timer);
    timer = setTimeout(() => void score(), DEBOUNCE_MS);
  }
  textarea.addEventListener('input', schedule);
  return { schedule };
}

/** The non-empty lines of the textarea, trimmed. */
export function referenceLines(value: string): string[] {
  return value
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}
