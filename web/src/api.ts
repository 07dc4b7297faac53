/**
 * The page's HTTP client for the Pixel Info API (docs/api.md): one function per endpoint it uses, typed
 * responses, and every failure (network, HTTP error, a model card that does not match its schema) thrown as
 * an ApiError with the server's stable `code`.
 *
 * Every request carries the API key when the page has one (./auth.ts). A 401 asks for a key and the request
 * is sent again with it; cancelling the dialog leaves the 401 (UNAUTHENTICATED) to the caller. Stored images
 * are fetched the same way, as blobs (`getBlob`), since an <img src> cannot send the key.
 */
import type { SentenceScores } from '../../src/metrics/sentence.js';
import { apiKey, authHeaders, requestKey } from './auth.js';
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
  /** With an image–text matcher on the server: its probability (0..1) that the caption describes the image. */
  confidence?: number;
}

/** A word the encoder's ImageNet classifier is confident about (src/encoder/tags.ts), with the classes behind it. */
export interface ImageTag {
  word: string;
  /** Summed probability of its ImageNet classes (0..1). */
  probability: number;
  classes: Array<{ index: number; label: string; probability: number }>;
}

/** The response of `POST /v1/captions`. */
export interface CaptionResponse {
  id: string;
  model: string | null;
  image: { format: string; width: number; height: number };
  captions: CaptionAlternative[];
  /** ImageNet-guided tags, most probable first (absent from servers older than tags). */
  tags?: ImageTag[];
  /** The best caption as alt text (src/text/alt-text.ts). */
  altText: string;
  options: { beam: number; nbest: number; maxLength: number; attention: boolean };
  timings: { preprocessMs: number; encoderMs: number; decoderMs: number; totalMs: number; queueMs: number; requestMs: number; batchSize: number };
  library: { imageUrl: string; thumbnailUrl: string } | null;
  /** The image–text matcher's name; null (or absent) without one. */
  matcher?: string | null;
}

/** How the library is searched: by what the query means (the image–text matcher), or by the words of the captions. */
export type SearchMode = 'meaning' | 'words';

/** One image of `GET /v1/library`. */
export interface LibraryItem {
  id: string;
  created: string;
  width: number;
  height: number;
  format: string;
  /** The best caption. */
  caption: string;
  /** The best caption's confidence (0..1), null when it was captioned without a matcher. */
  confidence: number | null;
  /** Only in a search by meaning: how well the query describes the image. */
  match?: { score: number; logit: number; cosine: number };
  /** The image's ImageNet-guided tags when captioned (absent from servers older than tags). */
  tags?: Array<{ word: string; probability: number }>;
  imageUrl: string;
  thumbnailUrl: string;
}

/** The response of `GET /v1/library`. */
export interface LibraryPage {
  query: string;
  mode: SearchMode;
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

/** Searches the library (by `mode`, else the server's default); an empty query lists the newest images. */
export function getLibrary(q: string, limit: number, mode?: SearchMode): Promise<LibraryPage> {
  const query = new URLSearchParams({ q, limit: String(limit) });
  if (mode) query.set('mode', mode);
  return requestJson<LibraryPage>(`/v1/library?${query}`);
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

/** A stored image or thumbnail (`imageUrl`, `thumbnailUrl` of the library), fetched with the API key. */
export async function getBlob(path: string): Promise<Blob> {
  const response = await send(path);
  if (!response.ok) throw await errorOf(response);
  return response.blob();
}

/** Fetches JSON; a network failure or an HTTP error becomes an ApiError (with the Retry-After hint when sent). */
async function requestJson<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await send(path, init);
  if (!response.ok) throw await errorOf(response);
  const body: unknown = await response.json().catch(() => null);
  if (body === null) throw new ApiError('BAD_RESPONSE', `${path.split('?')[0]} did not answer with JSON.`, response.status);
  return body as T;
}

/**
 * Sends a request with the API key, if any. On 401 it asks for a key (again, when the one sent was refused)
 * and sends the request once more with it, until a key is accepted or the dialog is cancelled.
 */
async function send(path: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const sentKey = apiKey();
    let response: Response;
    try {
      response = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) } });
    } catch {
      throw new ApiError('NETWORK', 'The server could not be reached.');
    }
    if (response.status !== 401) return response;
    // Another request may have got a key meanwhile: try that one before asking.
    if (apiKey() !== sentKey) continue;
    if ((await requestKey(sentKey ? 'rejected' : 'missing')) === null) return response;
  }
}

/** The ApiError of a failed response: the API's code and message, or HTTP_<status>. */
async function errorOf(response: Response): Promise<ApiError> {
  const body: unknown = await response.json().catch(() => null);
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const message = typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`;
  const retry = response.headers.get('retry-after');
  const code = typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`;
  return new ApiError(code, retry ? `${message} (retry in ${retry} s)` : message, response.status);
}
