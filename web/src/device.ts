/**
 * "Caption on this device": the page's captioner in the browser (src/browser, the `pixel-info/web` Captioner),
 * loaded on first use with its download progress, answering in the shape of `POST /v1/captions` so the caption
 * view, the alternatives and the heat-map draw it unchanged. No image is sent anywhere in this mode.
 */
import { Captioner, type LoadProgress, type LoadStats } from '../../src/browser/index.js';
import { toAltText } from '../../src/text/alt-text.js';
import type { CaptionResponse } from './api.js';

let loading: Promise<Captioner> | undefined;
const listeners = new Set<(progress: LoadProgress) => void>();

/** The on-device captioner, loaded once (models from /models/, cached by the browser). */
export function deviceCaptioner(onProgress?: (progress: LoadProgress) => void): Promise<Captioner> {
  if (onProgress) listeners.add(onProgress);
  loading ??= Captioner.load({ onProgress: (p) => listeners.forEach((l) => l(p)) });
  loading.catch(() => (loading = undefined)); // a failed load is tried again next time
  return loading.finally(() => onProgress && listeners.delete(onProgress));
}

/** What the first load cost, once loaded. */
export async function deviceLoadStats(): Promise<LoadStats | undefined> {
  return loading ? (await loading).loadStats : undefined;
}

/** Captions `image` here, as the API would (attention as 7x7 grids per word). */
export async function captionOnDevice(image: Blob, options: { beam: number; nbest: number }): Promise<CaptionResponse> {
  const captioner = await deviceCaptioner();
  const t0 = performance.now();
  const result = await captioner.caption(image, { beamSize: options.beam, nBest: options.nbest, returnAttention: true });
  const config = captioner.generationConfig({ beamSize: options.beam, nBest: options.nbest });
  const side = Math.round(Math.sqrt(result.captions[0]?.attention?.[0]?.length ?? 49));
  return {
    id: '',
    model: captioner.card.name ?? null,
    image: result.image,
    captions: result.captions.map((c) => ({
      text: c.text,
      tokens: c.tokens,
      score: c.score,
      logProb: c.logProb,
      attention: c.attention?.map((flat) => Array.from({ length: side }, (_, r) => flat.slice(r * side, (r + 1) * side))),
    })),
    tags: result.tags ?? [],
    altText: toAltText(result.captions[0]?.text ?? ''),
    options: { beam: config.beamSize, nbest: config.nBest, maxLength: config.maxLength, attention: true },
    timings: { ...result.timings, queueMs: 0, requestMs: Math.round(performance.now() - t0), batchSize: 1 },
    library: null,
  };
}
