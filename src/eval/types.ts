/**
 * The data of an evaluation, shared by the run (evaluate.ts) and its report (report.ts): the splits it can
 * score, the decoding settings it ran with, each image's caption or error, and metrics.json.
 */
import type { DatasetName } from '../data/datasets/index.js';
import type { MetricName } from '../metrics/index.js';
import type { Caption } from '../pipeline/captioner.js';
import type { GenerationConfig } from '../decoder/generation.js';

export const EVAL_SPLITS = ['val', 'test', 'train'] as const;
export type EvalSplit = (typeof EVAL_SPLITS)[number];

/** The decoding settings as they ran (src/decoder/generation.ts: the call's, else the model card's, else the defaults). */
export type ResolvedDecoding = GenerationConfig;

/** What one image of the split came to: its best caption, or why it has none. */
export type CaptionSlot = { caption: Caption } | { error: { code: string; message: string } };

export interface FailedImage {
  name: string;
  error: { code: string; message: string };
}

/** metrics.json */
export interface EvaluationRecord {
  format: 'pixel-info-eval';
  version: 1;
  dataset: DatasetName;
  split: EvalSplit;
  /** Images captioned and scored. */
  images: number;
  /** Images of the split selected (after --limit). */
  selected: number;
  failed: FailedImage[];
  /** COCO-toolkit metrics in 0..1 (CIDEr unbounded); METEOR null when off; SPICE only when asked for (--spice). */
  metrics: Record<MetricName, number | null> & { SPICE?: number | null };
  meteor: 'jar' | 'native' | 'off';
  decoding: ResolvedDecoding;
  /** Captions that end on a word of the config's dangling lists ("two men are playing in a"). */
  danglingEndings: number;
  /** `encoderPrecision`: the graph that encoded the images (source 'images'). */
  input: { source: 'features' | 'images'; featureStore?: string; encoderSha256: string; encoderSource: string; encoderPrecision?: 'fp32' | 'int8' };
  /** `int8Decoder`: whether the decoder ran with int8 weights (src/decoder/precision.ts). */
  model: {
    /** The (first) decoder directory and its card's name. */
    dir: string;
    name: string | null;
    encoderSha256: string | null;
    encoderMatches: boolean | null;
    int8Decoder: boolean;
    /** Present for an ensemble: every member's directory, in order, and how they combined. */
    ensemble?: { dirs: string[]; combine: string; weights: readonly number[] | null };
  };
  batchSize: number;
  threads: number | 'all';
  /** CPUs this process could use (what 'all' threads means). */
  cpus: number;
  /** Wall-clock seconds: loading models, captioning, scoring, writing outputs (report included) and all. */
  seconds: { load: number; caption: number; score: number; write: number; total: number };
  date: string;
  node: string;
}
