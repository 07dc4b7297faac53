/**
 * The page's HTTP client for the Pixel Info API (docs/api.md): one function per endpoint it uses, typed
 * responses, and every failure (network, HTTP error, a model card that does not match its schema) thrown as
 * an ApiError with the server's stable `code`.
 */
import type { SentenceScores } from '../../src/metrics/sentence.js';
import { parseModelCard, type ModelCard } from '../../src/decoder/model-card.js';
import { LIMITS } from '../../src/server/limits.js';

/** A failed request: the API's error code (or NETWORK / HTTP_<status>), a message to show, the HTTP status (0: none). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status = 0,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** One caption of `POST /v1/captions`, best first. */
export interface CaptionAlternative {
  text: string;
  tokens: string[];
  score: number;
  logProb: number;
  /** Per token, the 7x7 attention grid (rows); present when asked for with attention=true. */
  attention?: number[][][];
}

/** The response of `POST /v1/captions`. */
export interface CaptionResponse {
  id: string;
  model: string | null;
  image: { format: string; width: number; height: number };
  captions: CaptionAlternative[];
  /** The best caption as alt text (src/text/alt-text.ts). */
  altText: string;
  options: { beam: number; nbest: number; maxLength: number; attention: boolean };
  timings: { preprocessMs: number; encoderMs: number; decoderMs: number; totalMs: number; queueMs: number; requestMs: number; batchSize: number };
  library: { imageUrl: string; thumbnailUrl: string } | null;
}

/** One image of `GET /v1/library`. */
export interface LibraryItem {
  id: string;
  created: string;
  width: number;
  height: number;
  format: string;
  /** The best caption. */
  caption: string;
  imageUrl: string;
  thumbnailUrl: string;
}

/** The response of `GET /v1/library`. */
export interface LibraryPage {
  query: string;
  /** Items returned. */
  count: number;
  /** Images in the library. */
  total: number;
  items: LibraryItem[];
}

/** Most references `POST /v1/score` takes (the server's limit). */
export const MAX_REFERENCES = LIMITS.references;

/** Captions an image with attention: `beam` live beams, `nbest` alternatives. */
export function postCaption(image: Blob, options: { beam: number; nbest: number; fileName?: string }): Promise<CaptionResponse> {
  const form = new FormData();
  form.append('image', image, options.fileName || 'pasted-image');
  const query = new URLSearchParams({ beam: String(options.beam), nbest: String(options.nbest), attention: 'true' });
  return requestJson<CaptionResponse>(`/v1/captions?${query}`, { method: 'POST', body: form });
}

/** Sentence BLEU-1..4 and CIDEr-D of `candidate` against `references` (the first MAX_REFERENCES). */
export async function postScore(references: readonly string[], candidate: string): Promise<SentenceScores> {
  const body = JSON.stringify({ references: references.slice(0, MAX_REFERENCES), candidate });
  const { scores } = await requestJson<{ scores: SentenceScores }>('/v1/score', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return scores;
}

/** Full-text search over the library's captions; an empty query lists the newest images. */
export function getLibrary(q: string, limit: number): Promise<LibraryPage> {
  return requestJson<LibraryPage>(`/v1/library?${new URLSearchParams({ q, limit: String(limit) })}`);
}

/** The model card, checked against its schema (src/decoder/model-card.ts). */
export async function getModelCard(): Promise<ModelCard> {
  const json = await requestJson<unknown>('/v1/model');
  try {
    return parseModelCard(json);
  } catch (err) {
    throw new ApiError('MODEL_CORRUPT', (err as Error).message);
  }
}

/** Fetches JSON; a network failure or an HTTP error becomes an ApiError (with the Retry-After hint when sent). */
async function requestJson<T>(path: string, init?: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError('NETWORK', 'The server could not be reached.');
  }
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    const message = typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`;
    const retry = response.headers.get('retry-after');
    throw new ApiError(typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`, retry ? `${message} (retry in ${retry} s)` : message, response.status);
  }
  if (body === null) throw new ApiError('BAD_RESPONSE', `${path.split('?')[0]} did not answer with JSON.`, response.status);
  return body as T;
}
