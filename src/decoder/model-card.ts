/**
 * The model card (`model-card.json` of a model directory, served as `GET /v1/model`) as a zod schema: the
 * sections `trainer/export.py` writes, with their real keys, and the `decoding` recommendation read by
 * src/decoder/generation.ts.
 *
 * Every section is optional (a hand-made or older card still loads) and every object passes unknown keys
 * through (a newer trainer may add some), but a section that is present must have the documented types.
 * No Node imports: the web page's Info tab parses the card with this same schema.
 */
import { z } from 'zod';
import { ErrorCodes, PixelInfoError } from '../errors.js';
import { cardDecodingSchema } from './generation.js';

const count = z.number().int().nonnegative();
const text = z.string();

/** Corpus scores by their COCO caption toolkit names, as `pixel-info eval` reports them. */
export const cocoScoresSchema = z
  .object({
    'BLEU-1': z.number(),
    'BLEU-2': z.number(),
    'BLEU-3': z.number(),
    'BLEU-4': z.number(),
    /** null when METEOR was turned off (NaN in the evaluation, null in JSON). */
    METEOR: z.number().nullable(),
    'ROUGE-L': z.number(),
    CIDEr: z.number(),
  })
  .partial()
  .passthrough();
export type CocoScores = z.infer<typeof cocoScoresSchema>;

/** The names of cocoScoresSchema, in the toolkit's order. */
export const COCO_SCORE_NAMES = ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'METEOR', 'ROUGE-L', 'CIDEr'] as const satisfies readonly (keyof CocoScores)[];

/** The trainer's validation scores (trainer/metrics.py `score_split`): its own BLEU and CIDEr-D, on token ids. */
export const trainerScoresSchema = z
  .object({
    /** CIDEr-D. */
    cider: z.number(),
    bleu1: z.number(),
    bleu2: z.number(),
    bleu3: z.number(),
    bleu4: z.number(),
    /** Mean words per generated caption. */
    mean_length: z.number(),
    /** Distinct words used over all generated captions. */
    vocab_used: count,
    time_s: z.number(),
  })
  .partial()
  .passthrough();
export type TrainerScores = z.infer<typeof trainerScoresSchema>;

/** Which encoder made the features (src/encoder: the npm package and the ONNX model's checksum). */
const encoderRefSchema = z.object({ name: text, source: text, modelSha256: text }).partial().passthrough();

/** Shapes of an ONNX graph's inputs and outputs; dynamic axes are named ("B", "N"). */
const graphShapesSchema = z
  .object({ inputs: z.record(z.array(z.union([z.number().int(), text]))), outputs: z.record(z.array(z.union([z.number().int(), text]))) })
  .partial()
  .passthrough();

/** One reduced-precision quality gate: the same split decoded both ways, and whether the difference is within `maxCiderDrop`. */
export const int8GateSchema = z
  .object({
    passed: z.boolean(),
    /** The rule: fp32 CIDEr − int8 CIDEr ≤ maxCiderDrop on `split`. */
    maxCiderDrop: z.number(),
    dataset: text,
    split: text,
    images: count,
    fp32: cocoScoresSchema,
    int8: cocoScoresSchema,
    ciderDrop: z.number(),
    /** Images whose caption is the same both ways. */
    identicalCaptions: count,
    decoding: text,
    date: text,
  })
  .partial()
  .passthrough();
export type Int8Gate = z.infer<typeof int8GateSchema>;

/**
 * A fine-tuned encoder shipped in the model directory (trainer.finetune --export): `file` (a name in the
 * directory, e.g. `encoder.onnx`) with the product encoder's ONNX interface, and its checksum. The decoder was
 * trained on that encoder's features, so the captioner runs it instead of the base encoder.
 */
export const finetunedEncoderSchema = z
  .object({
    file: z
      .string()
      .min(1)
      .refine((f) => !/[/\\]/.test(f) && f !== '.' && f !== '..', 'a file name in the model directory, without a path'),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in lowercase hex (64 digits)'),
  })
  .merge(
    z
      .object({
        bytes: count,
        opset: z.number().int(),
        /** e.g. "float16 initializers, each Cast to float32" or "float32". */
        weights: text,
        /** Written true: the decoder needs this encoder (the library treats every entry as required). */
        required: z.boolean(),
        preprocessing: text,
        /** The encoder that was fine-tuned (the product's resnet50.onnx, or the Keras model). */
        base: z.object({ kind: text, file: text, sha256: text }).partial().passthrough(),
        /** The ResNet50 blocks that were trained. */
        blocks: z.array(text),
        finetune_blocks: count,
        trainable_parameters: count,
        training: z.object({}).passthrough(),
        exported_with: text,
      })
      .partial(),
  )
  .passthrough();
export type FinetunedEncoder = z.infer<typeof finetunedEncoderSchema>;

export const modelCardSchema = z
  .object({
    format: z.literal('pixel-info-model-card'),
    version: z.number().int().positive(),
    name: text,
    /** When the model directory was exported (ISO 8601). */
    date: text,
    architecture: z
      .object({
        type: text,
        description: text,
        encoder: encoderRefSchema.nullable(),
        /** The architecture's config (trainer/models: ModelConfig of show-attend-tell). */
        config: z
          .object({
            vocab_size: count,
            embed_dim: count,
            hidden_dim: count,
            attention_dim: count,
            feature_dim: count,
            dropout: z.number(),
            feature_norm: z.enum(['none', 'layernorm']),
          })
          .partial()
          .passthrough(),
        /** Decoder parameters. */
        parameters: count,
      })
      .partial()
      .passthrough(),
    onnx: z
      .object({
        opset: z.number().int(),
        weights: text,
        init: graphShapesSchema,
        step: graphShapesSchema,
        fp16_weights_max_abs_diff_log_probs: z.number(),
        exported_with: text,
      })
      .partial()
      .passthrough(),
    vocab: z
      .object({ size: count, specials: z.record(z.number().int()).nullable() })
      .partial()
      .passthrough(),
    /** Longest caption in the training data (words); null when the checkpoint did not record it. */
    maxLength: z.number().int().positive().nullable(),
    training: z
      .object({
        /** The checkpoint exported: its stage ("xe" cross-entropy or "scst" self-critical) and epoch. */
        selected: z.object({ stage: text.nullable(), epoch: z.number().int().nullable() }).partial().passthrough(),
        /** Epochs run per stage. */
        epochs: z.record(count),
        /** The trainer's command-line arguments (trainer/train.py); the ones shown are typed. */
        args: z
          .object({ epochs: count, batch_size: count, lr: z.number(), seed: z.number().int(), scst: z.boolean(), val_beam: count })
          .partial()
          .passthrough()
          .nullable(),
        torch: text.nullable(),
        date: text.nullable(),
        history: z.array(
          z
            .object({
              stage: text,
              epoch: z.number().int(),
              train_loss: z.number().nullable(),
              lr: z.number().nullable(),
              time_s: z.number().nullable(),
              val_cider: z.number().nullable(),
              val_bleu4: z.number().nullable(),
            })
            .partial()
            .passthrough(),
        ),
      })
      .partial()
      .passthrough(),
    data: z
      .object({
        /** The prepared captions the model was trained on, and the dataset file they came from. */
        captions: z
          .object({ file: text, sha256: text, source: z.object({ file: text, md5: text }).partial().passthrough().nullable() })
          .partial()
          .passthrough(),
        /** The feature store trained on. */
        features: z
          .object({ dir: text, index_sha256: text, spatial_sha256: text, encoder: encoderRefSchema.nullable(), count: count })
          .partial()
          .passthrough(),
        /** The captions file given to the export, when one was. */
        captions_at_export: z.object({ file: text, sha256: text }).partial().passthrough(),
      })
      .partial()
      .passthrough(),
    metrics: z
      .object({
        /** Validation scores of the exported checkpoint, by the trainer. */
        val: trainerScoresSchema,
        /** How `val` was decoded: the trainer's search settings (older cards: a phrase such as "beam 1"). */
        val_decoding: z.union([text, cardDecodingSchema]),
        /** Test-split scores with the COCO toolkit definitions; null until measured. */
        test: cocoScoresSchema.nullable(),
        /** trainer.evaluate's beam / length-penalty sweep on val (export --eval-json). */
        val_sweep: z
          .object({
            checkpoint: text,
            split: text,
            results: z.array(trainerScoresSchema.extend({ beam: count, length_penalty: z.number() }).partial().passthrough()),
            best: z.object({ beam: count, length_penalty: z.number() }).partial().passthrough(),
          })
          .partial()
          .passthrough(),
        /** Scores by `pixel-info eval` (COCO toolkit definitions): named runs such as `test_beam3`, and a val sweep. */
        coco: z
          .object({
            definition: text,
            val_sweep: z.array(cocoScoresSchema.extend({ beam: count, lengthPenalty: z.number() }).partial().passthrough()),
          })
          .partial()
          .passthrough(),
      })
      .partial()
      .passthrough(),
    /** Recommended decoding settings (src/decoder/generation.ts). */
    decoding: cardDecodingSchema,
    /** Quality gates of reduced-precision paths, as `pixel-info eval --int8-gate --write-card` measured them. */
    quantization: z
      .object({
        /** The int8 decoder (src/onnx/quantize.ts); on by default only when `passed` (src/decoder/precision.ts). */
        int8Decoder: int8GateSchema,
        /** Calibrated input ranges of the dense layers (src/decoder/int8-calibrate.ts): batch-independent int8. */
        int8DecoderCalibration: z
          .object({
            dataset: text,
            split: text,
            images: count,
            percentile: z.number(),
            date: text,
            ranges: z.object({ init: z.record(z.object({ min: z.number(), max: z.number() })), step: z.record(z.object({ min: z.number(), max: z.number() })) }).partial(),
          })
          .partial()
          .passthrough(),
      })
      .partial()
      .passthrough(),
    /**
     * The encoder the decoder runs on: `finetuned` is a fine-tuned encoder in the model directory, or null when
     * fine-tuning did not help and the decoder runs on the product's encoder (then `note` says why). No section: the
     * product's encoder.
     */
    encoder: z.object({ finetuned: finetunedEncoderSchema.nullable(), note: text }).partial().passthrough(),
  })
  .partial()
  .passthrough();

export type ModelCard = z.infer<typeof modelCardSchema>;

/** The fine-tuned encoder a card requires (`encoder.finetuned`), or null when the decoder runs on the product's encoder. */
export function finetunedEncoderOf(card: ModelCard): FinetunedEncoder | null {
  return card.encoder?.finetuned ?? null;
}

/** Parses a model card; a card that does not match is MODEL_CORRUPT, naming each bad field. */
export function parseModelCard(value: unknown, where = 'model card'): ModelCard {
  const parsed = modelCardSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'value'}: ${issue.message}`);
  throw new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `${where}: ${problems.join('; ')}`, { subject: where });
}
