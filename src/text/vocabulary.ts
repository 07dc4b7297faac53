/**
 * Word ↔ id mapping shared by the trainer (through captions.json / vocab.json) and the decoder at run time.
 * Ids 0-3 are the special tokens; the rest are training words ordered by count (descending), ties by word in
 * code-point order, so Python can rebuild exactly the same list.
 */
import { ErrorCodes, PixelInfoError } from '../errors.js';

export const SPECIALS = { pad: 0, start: 1, end: 2, unk: 3 } as const;
export const SPECIAL_WORDS = ['<pad>', '<start>', '<end>', '<unk>'] as const;

export class Vocabulary {
  readonly words: string[];
  private readonly ids: Map<string, number>;

  private constructor(words: string[]) {
    this.words = words;
    this.ids = new Map(words.map((word, id) => [word, id]));
  }

  /** Words seen at least `minCount` times in the (training) captions. */
  static build(tokenised: string[][], minCount = 5): Vocabulary {
    if (!Number.isInteger(minCount) || minCount < 1) {
      throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `minCount must be a positive integer, got ${minCount}`);
    }
    const counts = new Map<string, number>();
    for (const tokens of tokenised) for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
    const specials = new Set<string>(SPECIAL_WORDS);
    const kept = [...counts]
      .filter(([word, count]) => count >= minCount && !specials.has(word) && word !== '')
      .sort(([a, ca], [b, cb]) => cb - ca || (a < b ? -1 : a > b ? 1 : 0))
      .map(([word]) => word);
    return new Vocabulary([...SPECIAL_WORDS, ...kept]);
  }

  /** From a saved word list (captions.json `vocab`, a model's vocab.json). */
  static fromJSON(words: unknown): Vocabulary {
    const fail = (reason: string) => new PixelInfoError(ErrorCodes.MODEL_CORRUPT, `invalid vocabulary: ${reason}`);
    if (!Array.isArray(words) || !words.every((w) => typeof w === 'string')) throw fail('expected an array of strings');
    SPECIAL_WORDS.forEach((special, id) => {
      if (words[id] !== special) throw fail(`id ${id} must be '${special}', found ${JSON.stringify(words[id])}`);
    });
    const seen = new Set<string>();
    for (const word of words) {
      if (word === '') throw fail('empty word');
      if (seen.has(word)) throw fail(`word '${word}' appears twice`);
      seen.add(word);
    }
    return new Vocabulary([...words]);
  }

  toJSON(): string[] {
    return this.words;
  }

  get size(): number {
    return this.words.length;
  }

  /** The id of `word`, or the <unk> id. */
  idOf(word: string): number {
    return this.ids.get(word) ?? SPECIALS.unk;
  }

  /** Tokens → ids (unknown → <unk>), cut to `maxLength` when given; no <start>/<end> added. */
  encode(tokens: string[], maxLength?: number): number[] {
    const kept = maxLength === undefined ? tokens : tokens.slice(0, maxLength);
    return kept.map((token) => this.idOf(token));
  }

  /** Ids → words, stopping at <end> and leaving out the other special tokens. */
  decode(ids: number[]): string[] {
    const words: string[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.words.length) {
        throw new PixelInfoError(ErrorCodes.INVALID_ARGUMENT, `token id ${id} is outside the vocabulary (size ${this.words.length})`);
      }
      if (id === SPECIALS.end) break;
      if (id < SPECIAL_WORDS.length) continue;
      words.push(this.words[id]);
    }
    return words;
  }
}
