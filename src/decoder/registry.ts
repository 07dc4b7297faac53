/**
 * Decoder architectures by the model card's `architecture.type`. Each entry knows its files and loads a
 * StepModel from a model directory; the search sees only the StepModel interface, so its state stays opaque.
 *
 * Adding an architecture: a StepModel in ./models/<name>.ts, its PyTorch module in trainer/models/<name>.py,
 * and one entry here and one in trainer/models/__init__.py.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';
import type { StepModel } from './step-model.js';
import { INIT_FILE, STEP_FILE, ShowAttendTellStepModel, type ShowAttendTellOptions } from './models/show-attend-tell.js';
import { TransformerStepModel } from './models/transformer.js';

/** A decoder ready to search with; released when its captioner is. */
export interface LoadedDecoder extends StepModel {
  /** Channels per region the decoder reads (regions × featureDim floats per image); must match the encoder's. */
  readonly featureDim: number;
  release(): Promise<void>;
}

export interface DecoderLoadOptions {
  /** onnxruntime intra-op threads; default all cores. */
  threads?: number;
  /** int8 weights for the dense layers, where the architecture supports it. */
  int8?: boolean;
  /** With int8: the calibrated input ranges of the dense layers per graph, from the model card (model-dir.ts passes them). */
  int8Ranges?: Partial<Record<'init' | 'step', Record<string, { min: number; max: number }>>>;
  /** Calibration only (src/decoder/int8-calibrate.ts): extra tensors per graph and a callback on every run. */
  observe?: ShowAttendTellOptions['observe'];
}

export interface DecoderArchitecture {
  /** Files the model directory must hold besides vocab.json and model-card.json. */
  readonly files: readonly string[];
  /** Opens the graphs in `dir`; `vocabSize` is checked against them (a mismatch is MODEL_CORRUPT). */
  load(dir: string, vocabSize: number, options: DecoderLoadOptions): Promise<LoadedDecoder>;
}

/**
 * int8 decoder weights (or their calibration) asked of an architecture that has no int8 path. A PixelInfoError
 * (INVALID_ARGUMENT) that names the architecture; 'auto' never asks for int8 without a passed gate in the card,
 * so only an explicit request (`--int8-decoder`, `int8Decoder: true`, `--calibrate-int8`) meets it.
 */
export class Int8UnsupportedError extends PixelInfoError {
  constructor(
    readonly architecture: string,
    dir: string,
    what: 'int8 decoder weights' | 'int8 calibration' = 'int8 decoder weights',
  ) {
    super(
      ErrorCodes.INVALID_ARGUMENT,
      `${dir}: ${what} are not supported for the ${JSON.stringify(architecture)} decoder architecture (only show-attend-tell has an int8 path); run it in fp32 (--no-int8-decoder, int8Decoder: false)`,
      { subject: dir },
    );
  }
}

export const ARCHITECTURES: Readonly<Record<string, DecoderArchitecture>> = {
  'show-attend-tell': {
    files: [INIT_FILE, STEP_FILE],
    load: (dir, vocabSize, options) => ShowAttendTellStepModel.load(dir, { ...options, vocabSize }),
  },
  transformer: {
    files: [INIT_FILE, STEP_FILE],
    load: async (dir, vocabSize, options) => {
      if (options.int8) throw new Int8UnsupportedError('transformer', dir);
      if (options.observe) throw new Int8UnsupportedError('transformer', dir, 'int8 calibration');
      return TransformerStepModel.load(dir, { threads: options.threads, vocabSize });
    },
  },
};

/** The architecture a card names; a card without `architecture.type` predates the registry: show-attend-tell. */
export function architectureOf(card: { architecture?: unknown }, where: string): DecoderArchitecture {
  const type = (card.architecture as { type?: unknown } | undefined)?.type ?? 'show-attend-tell';
  const arch = typeof type === 'string' && Object.hasOwn(ARCHITECTURES, type) ? ARCHITECTURES[type] : undefined;
  if (!arch) {
    throw new PixelInfoError(
      ErrorCodes.MODEL_CORRUPT,
      `${where}: unknown decoder architecture ${JSON.stringify(type)} (known: ${Object.keys(ARCHITECTURES).join(', ')})`,
      { subject: where },
    );
  }
  return arch;
}
