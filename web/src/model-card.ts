/**
 * The Info tab: the model card (`GET /v1/model`, parsed with the card's schema, src/decoder/model-card.ts) as
 * cards of label/value rows: the model, its architecture, recommended decoding, training data and metrics.
 */
import { COCO_SCORE_NAMES, type ModelCard } from '../../src/decoder/model-card.js';
import type { CardDecoding } from '../../src/decoder/generation.js';
import { getModelCard } from './api.js';
import { byId, h } from './dom.js';

/** A label and its value; rows whose value is missing or empty are left out. */
export type Row = readonly [label: string, value: string | number | null | undefined];

export interface CardSection {
  title: string;
  rows: Row[];
  /** A paragraph under the title. */
  text?: string;
  /** A small print line under the rows. */
  note?: string;
  /** The first, highlighted card. */
  lead?: boolean;
}

export interface ModelCardView {
  /** Fetches and shows the card the first time; later calls do nothing (a failed load is retried). */
  load(): Promise<void>;
}

/** Shows the model card in #info. */
export function createModelCardView(): ModelCardView {
  const container = byId('info');
  let loaded: Promise<void> | undefined;

  async function fetchAndRender(): Promise<void> {
    try {
      const card = await getModelCard();
      container.replaceChildren(...modelCardSections(card).map(renderSection));
    } catch (err) {
      loaded = undefined;
      const { code = 'ERROR', message } = err as { code?: string; message: string };
      container.replaceChildren(h('p', { className: 'error', textContent: `${code}: ${message}` }));
    }
  }
  return { load: () => (loaded ??= fetchAndRender()) };
}

const fixed = (v: number | null | undefined, digits = 3) => (typeof v === 'number' ? v.toFixed(digits) : undefined);
const localDate = (iso: string | null | undefined) => (iso ? new Date(iso).toLocaleString() : undefined);

/** The card as sections of rows (pure: no DOM). */
export function modelCardSections(card: ModelCard): CardSection[] {
  const { architecture: arch = {}, training = {}, data = {}, metrics = {}, decoding } = card;
  const cfg = arch.config ?? {};
  const sections: CardSection[] = [
    {
      title: card.name ?? 'Model',
      lead: true,
      text: arch.description,
      rows: [
        ['Format', card.format && `${card.format} v${card.version}`],
        ['Exported', localDate(card.date)],
      ],
    },
    {
      title: 'Architecture',
      rows: [
        ['Type', arch.type],
        ['Encoder', arch.encoder?.name && `${arch.encoder.name}${arch.encoder.source ? ` (${arch.encoder.source})` : ''}`],
        ['Parameters', arch.parameters !== undefined ? `${(arch.parameters / 1e6).toFixed(1)} M (decoder)` : undefined],
        ['Vocabulary', card.vocab?.size ?? cfg.vocab_size],
        ['Embedding / hidden / attention', [cfg.embed_dim, cfg.hidden_dim, cfg.attention_dim].filter((v) => v !== undefined).join(' / ')],
        ['Feature map', cfg.feature_dim && `7 × 7 × ${cfg.feature_dim}${cfg.feature_norm === 'layernorm' ? ', layer-normalised' : ''}`],
        ['Longest training caption', card.maxLength],
        ['ONNX', card.onnx?.opset && `opset ${card.onnx.opset}${card.onnx.weights ? `, ${card.onnx.weights}` : ''}`],
      ],
    },
  ];
  if (decoding) {
    sections.push({
      title: 'Decoding (defaults)',
      rows: [
        ['Beam size', decoding.beamSize],
        ['Length penalty', decoding.lengthPenalty],
        ['Max caption length', decoding.maxLength],
        ['No repeated n-grams of', decoding.noRepeatNgram === 0 ? 'off' : decoding.noRepeatNgram],
      ],
    });
  }
  sections.push({
    title: 'Training data',
    rows: [
      ['Captions', data.captions?.source?.file ?? data.captions?.file],
      ['Training images', data.features?.count],
      ['Features from', data.features?.encoder?.name],
      ['Selected checkpoint', training.selected?.stage && `${training.selected.stage} epoch ${training.selected.epoch ?? '?'}`],
      ['Epochs', training.epochs && Object.entries(training.epochs).map(([stage, n]) => `${stage} ${n}`).join(', ')],
      ['Batch size / learning rate', training.args?.batch_size !== undefined && training.args.lr !== undefined ? `${training.args.batch_size} / ${training.args.lr}` : undefined],
      ['PyTorch', training.torch],
      ['Trained', localDate(training.date)],
    ],
  });
  const val = metrics.val;
  if (val) {
    sections.push({
      title: `Metrics (validation${describeDecoding(metrics.val_decoding)})`,
      rows: [
        ['BLEU-1', fixed(val.bleu1)],
        ['BLEU-2', fixed(val.bleu2)],
        ['BLEU-3', fixed(val.bleu3)],
        ['BLEU-4', fixed(val.bleu4)],
        ['CIDEr-D', fixed(val.cider)],
        ['Mean length', fixed(val.mean_length, 1)],
        ['Distinct words used', val.vocab_used],
      ],
      note: "The trainer's scores on token ids, as measured while training.",
    });
  }
  sections.push({
    title: 'Metrics (test, COCO toolkit definitions)',
    rows: metrics.test ? COCO_SCORE_NAMES.map((name) => [name, fixed(metrics.test?.[name])] as const) : [],
    note: metrics.test ? metrics.coco?.definition : 'No test-split scores in this model card.',
  });
  return sections;
}

function renderSection({ title, rows, text, note, lead }: CardSection): HTMLElement {
  const shown = rows.filter(([, value]) => value !== undefined && value !== null && value !== '');
  return h(
    'section',
    { className: lead ? 'card lead' : 'card' },
    h('h2', { textContent: title }),
    ...(text ? [h('p', { textContent: text })] : []),
    ...(shown.length ? [h('dl', {}, ...shown.flatMap(([label, value]) => [h('dt', { textContent: label }), h('dd', { textContent: String(value) })]))] : []),
    ...(note ? [h('p', { className: 'note', textContent: note })] : []),
  );
}

/** ", beam 3" for the trainer's validation settings (a phrase in older cards), '' when unknown. */
function describeDecoding(decoding: string | CardDecoding | undefined): string {
  if (!decoding) return '';
  if (typeof decoding === 'string') return `, ${decoding}`;
  return decoding.beamSize === undefined ? '' : `, beam ${decoding.beamSize}`;
}
