/**
 * The caption card of the Caption tab: the selected caption as one button per word (hover or focus shows that
 * word's heat-map; arrow keys move between words), the n-best alternatives with their scores, the server's
 * timings, and the alt text behind Copy alt text and Read aloud (the shared rule of src/text/alt-text.ts, so
 * the page copies exactly what the API's `altText` and the CLI's --alt-text give). With an image–text matcher on
 * the server, the selected caption's confidence (#confidence, inside the live region: announced with the
 * caption) and each alternative's, a "Low confidence" badge below the documented threshold (./confidence.ts).
 * Under the caption, the image's ImageNet-guided tags (#tags): the words the encoder's ImageNet classifier is
 * confident about, each with its probability and, on hover, the classes behind it.
 */
import { toAltText } from '../../src/text/alt-text.js';
import type { CaptionAlternative, CaptionResponse, ImageTag } from './api.js';
import { byId, h } from './dom.js';
import { confidenceBadge } from './confidence.js';

/** The alt text of the caption at `index` of a result (the server's `altText` for index 0). */
export function altTextOf(result: Pick<CaptionResponse, 'captions'> | null, index: number): string {
  const caption = result?.captions[index];
  return caption ? toAltText(caption.text) : '';
}

/** "−0.71 · p 1.2e-4": the ranking score and the probability of the whole caption. */
export function scoreLabel(caption: Pick<CaptionAlternative, 'score' | 'logProb'>): string {
  return `${caption.score.toFixed(2)} · p ${Math.exp(caption.logProb).toExponential(1)}`;
}

/** The line under the alternatives: image size and format, and where the server's time went. */
export function timingsLine({ image, timings: t }: Pick<CaptionResponse, 'image' | 'timings'>): string {
  const ms = (v: number) => `${Math.round(v)} ms`;
  return (
    `${image.width}×${image.height} ${image.format} · ${ms(t.requestMs)} on the server ` +
    `(encoder ${ms(t.encoderMs)}, decoder ${ms(t.decoderMs)}, queue ${ms(t.queueMs)}, batch of ${t.batchSize})`
  );
}

/** "cat 99%": a tag as shown; its title names the ImageNet classes behind it. */
export function tagChip(tag: Pick<ImageTag, 'word' | 'probability'> & { classes?: ImageTag['classes'] }): HTMLElement {
  const percent = Math.round(Math.max(0, Math.min(1, tag.probability)) * 100);
  const classes = tag.classes?.map((c) => `${c.label} ${Math.round(c.probability * 100)}%`).join(', ');
  return h('span', {
    className: 'tag',
    textContent: `${tag.word} ${percent}%`,
    title: classes ? `ImageNet classes: ${classes}` : `ImageNet classifier: ${percent}%`,
    dataset: { word: tag.word },
  });
}

/** The tags line: a label and one chip per tag; null when there are none. */
export function tagsLine(tags: ReadonlyArray<Parameters<typeof tagChip>[0]> | undefined): HTMLElement[] | null {
  if (!tags?.length) return null;
  return [h('span', { className: 'tags-label', textContent: 'ImageNet sees:' }), ...tags.map(tagChip)];
}

export interface CaptionViewEvents {
  /** A word was hovered or focused (its index in the selected caption), or left (null). */
  onWord(index: number | null): void;
  /** An alternative was chosen. */
  onSelect(index: number): void;
}

export interface CaptionView {
  /** Shows `result`'s caption at `selected` and the alternatives; null shows the placeholder (`hasImage` picks its text). */
  render(result: CaptionResponse | null, selected: number, hasImage: boolean): void;
  /** Marks word `index` as active (null: none). */
  markWord(index: number | null): void;
}

/** The caption (#caption), its hint (#word-hint), the alternatives (#alternatives) and the timings (#timings). */
export function createCaptionView(events: CaptionViewEvents): CaptionView {
  const captionEl = byId('caption');
  const hint = byId('word-hint');
  const alternatives = byId('alternatives', HTMLOListElement);
  const timings = byId('timings');
  const confidence = byId('confidence');
  const tagsEl = byId('tags');
  const words = () => [...captionEl.querySelectorAll<HTMLButtonElement>('.word')];

  function wordButton(token: string, index: number, count: number): HTMLButtonElement {
    const button = h('button', { type: 'button', className: 'word', textContent: token, dataset: { index: String(index) }, attrs: { 'aria-describedby': 'word-hint' } });
    button.addEventListener('mouseenter', () => events.onWord(index));
    button.addEventListener('focus', () => events.onWord(index));
    button.addEventListener('mouseleave', () => document.activeElement !== button && events.onWord(null));
    button.addEventListener('blur', () => events.onWord(null));
    button.addEventListener('keydown', (event) => {
      const step = ({ ArrowRight: 1, ArrowLeft: -1 } as Record<string, number>)[event.key];
      if (!step) return;
      event.preventDefault();
      words()[Math.min(count - 1, Math.max(0, index + step))]?.focus();
    });
    return button;
  }

  function alternative(caption: CaptionAlternative, index: number, selected: number): HTMLLIElement {
    const score = h('span', { className: 'score', textContent: scoreLabel(caption), title: 'Ranking score (log-probability, length-normalised) and the probability of the whole caption' });
    const badge = confidenceBadge(caption.confidence, 'compact');
    const meta = h('span', { className: 'alternative-meta' }, ...(badge ? [badge] : []), score);
    const button = h('button', { type: 'button', attrs: { 'aria-pressed': String(index === selected) } }, h('span', { textContent: caption.text }), meta);
    button.addEventListener('click', () => events.onSelect(index));
    return h('li', {}, button);
  }

  return {
    render(result, selected, hasImage) {
      hint.hidden = !result;
      timings.textContent = result ? timingsLine(result) : '';
      alternatives.replaceChildren(...(result?.captions.map((c, i) => alternative(c, i, selected)) ?? []));
      const caption = result?.captions[selected];
      const badge = confidenceBadge(caption?.confidence);
      confidence.replaceChildren(...(badge ? [badge] : []));
      confidence.hidden = !badge;
      const tags = tagsLine(result?.tags);
      tagsEl.replaceChildren(...(tags ?? []));
      tagsEl.hidden = !tags;
      if (!caption) {
        captionEl.className = 'caption placeholder';
        captionEl.textContent = hasImage ? 'Press Captionize to describe this image.' : 'Choose an image and press Captionize.';
        return;
      }
      captionEl.className = 'caption';
      captionEl.replaceChildren(...caption.tokens.map((token, i) => wordButton(token, i, caption.tokens.length)));
    },
    markWord(index) {
      words().forEach((word, i) => word.classList.toggle('active', i === index));
    },
  };
}

/** Copies `text` to the clipboard; falls back to execCommand where the Clipboard API is missing or denied. */
export async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { value: text, readOnly: true, className: 'visually-hidden' });
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  }
}

/** Whether this browser can read aloud (Web Speech API). */
export const canSpeak = (): boolean => 'speechSynthesis' in window;

/** Reads `text` aloud in English, interrupting anything still being read. */
export function speak(text: string): void {
  if (!canSpeak() || !text) return;
  speechSynthesis.cancel();
  const utterance = new SpeechSynthesisUtterance(text);
  utterance.lang = 'en';
  speechSynthesis.speak(utterance);
}
