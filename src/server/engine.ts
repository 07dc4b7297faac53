/**
 * The captioning side of the server: what it needs from a Captioner, and the batch worker that turns a batch
 * of uploaded images (all with the same search options) into one Captioner call.
 */
import type { CaptionOptions, CaptionOutcome, CaptionResult } from '../pipeline/captioner.js';
import type { ModelCard } from '../decoder/model-dir.js';
import { DEFAULT_SEARCH_OPTIONS } from '../decoder/search.js';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { CaptionRequestOptions } from './schemas.js';

/** The part of Captioner the server uses; tests pass a fake. */
export interface CaptionEngine {
  readonly card: ModelCard;
  caption(inputs: ReadonlyArray<string | Buffer>, options?: CaptionOptions): Promise<CaptionOutcome[]>;
  release(): Promise<void>;
}

/** One queued image. */
export interface CaptionJob {
  bytes: Buffer;
  search: SearchChoice;
}

/** The search options a request resolved to: requests share a batch only when these are equal. */
export interface SearchChoice {
  beamSize: number;
  nBest: number;
  maxLength: number;
}

/** Request options over the model card's recommended decoding over the library defaults. */
export function resolveSearchChoice(options: CaptionRequestOptions, card: ModelCard): SearchChoice {
  // The same precedence as Captioner: the card's recommended decoding, then the search defaults.
  const fromCard = card.decoding ?? {};
  const beamSize = options.beam ?? fromCard.beamSize ?? DEFAULT_SEARCH_OPTIONS.beamSize;
  const nBest = options.nbest ?? 1;
  if (nBest > beamSize) {
    throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `invalid options: nbest: must be at most beam (${beamSize}, the default), got ${nBest}`, { subject: 'nbest' });
  }
  return { beamSize, nBest, maxLength: options.maxLength ?? fromCard.maxLength ?? DEFAULT_SEARCH_OPTIONS.maxLength };
}

export const searchKey = (job: CaptionJob): string => `${job.search.beamSize}/${job.search.nBest}/${job.search.maxLength}`;

/**
 * Runs one batch. Attention is always computed (it costs little next to the search) so that requests with and
 * without `attention` can share a batch; the route drops it when it was not asked for.
 */
export function captionWorker(engine: () => CaptionEngine) {
  return async (jobs: CaptionJob[]): Promise<Array<CaptionResult | Error>> => {
    const { beamSize, nBest, maxLength } = jobs[0].search;
    const outcomes = await engine().caption(
      jobs.map((j) => j.bytes),
      { beamSize, nBest, maxLength, returnAttention: true },
    );
    return outcomes.map((o) => ('error' in o ? new PixelInfoError(o.error.code, renameBufferSource(o.error.message)) : o));
  };
}

/** The Captioner names buffers "<buffer 3>"; to an API client the one image it sent is "image". */
function renameBufferSource(message: string): string {
  return message.replace(/^<buffer(?: \d+)?>/, 'image');
}
