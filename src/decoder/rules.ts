/**
 * Decoding rules: small named constraints on what a beam may write next. Each rule looks at one live beam's
 * words and bans some token ids for its next step. The search applies the rules a GenerationConfig names, in
 * any order (a ban is a ban); trainer/decoding.py implements the same rules under the same names, and the
 * shared fixture test/fixtures/decoder/beam-parity.json proves both searches equal.
 *
 *   no-specials          never <pad> or <start>
 *   no-unk               never <unk> (a caption never shows "<unk>")
 *   no-empty             no <end> before the first word
 *   no-repeated-token    not the same word twice in a row ("a a dog")
 *   no-repeated-ngram    no n-gram twice in a caption (n = config.noRepeatNgram; 0 turns it off)
 *   no-dangling-ending   no <end> right after an article, preposition, conjunction, auxiliary or bare modifier
 *                        ("two men are playing in a"); the words come from the model card (config.danglingWords)
 */
import type { DanglingWords, GenerationConfig, RuleName } from './generation.js';

export interface SpecialTokens {
  pad: number;
  start: number;
  end: number;
  unk: number;
}

/** One rule, ready for a given vocabulary: `ban` receives the beam's words (ids) and adds the ids it forbids. */
export interface DecodingRule {
  readonly name: RuleName;
  ban(words: readonly number[], banned: number[]): void;
}

type RuleFactory = (config: GenerationConfig, specials: SpecialTokens, vocabulary: readonly string[]) => DecodingRule | null;

const RULES: Record<RuleName, RuleFactory> = {
  'no-specials': (_c, { pad, start }) => ({
    name: 'no-specials',
    ban: (_words, banned) => void banned.push(pad, start),
  }),
  'no-unk': (_c, { unk }) => ({
    name: 'no-unk',
    ban: (_words, banned) => void banned.push(unk),
  }),
  'no-empty': (_c, { end }) => ({
    name: 'no-empty',
    ban: (words, banned) => void (words.length === 0 && banned.push(end)),
  }),
  'no-repeated-token': () => ({
    name: 'no-repeated-token',
    ban: (words, banned) => void (words.length > 0 && banned.push(words[words.length - 1])),
  }),
  'no-repeated-ngram': ({ noRepeatNgram: N }) =>
    N > 0
      ? {
          name: 'no-repeated-ngram',
          // Any earlier occurrence of the last N-1 words bans the word that followed it.
          ban: (words, banned) => {
            const n = words.length;
            if (n < N - 1) return;
            for (let i = 0; i + N - 1 < n; i++) {
              let same = true;
              for (let j = 0; j < N - 1 && same; j++) same = words[i + j] === words[n - N + 1 + j];
              if (same) banned.push(words[i + N - 1]);
            }
          },
        }
      : null,
  'no-dangling-ending': ({ danglingWords }, { end }, vocabulary) => {
    const dangling = new Set(Object.values(danglingWords).flat());
    const ids = new Set<number>();
    vocabulary.forEach((word, id) => dangling.has(word) && ids.add(id));
    return {
      name: 'no-dangling-ending',
      ban: (words, banned) => void (words.length > 0 && ids.has(words[words.length - 1]) && banned.push(end)),
    };
  },
};

/** The rules a config names, built for a vocabulary (id → word; needed by no-dangling-ending). */
export function buildRules(config: GenerationConfig, specials: SpecialTokens, vocabulary: readonly string[] = []): DecodingRule[] {
  return config.rules.map((name) => RULES[name](config, specials, vocabulary)).filter((r): r is DecodingRule => r !== null);
}

/** Every id the rules forbid after `words`, in the range [0, vocabSize). */
export function bannedTokens(rules: readonly DecodingRule[], words: readonly number[], vocabSize: number): number[] {
  const banned: number[] = [];
  for (const rule of rules) rule.ban(words, banned);
  return banned.filter((id) => id >= 0 && id < vocabSize);
}

/** Whether a caption (words) ends on one of the dangling words: what the no-dangling-ending rule prevents. */
export function isDanglingEnding(words: readonly string[], danglingWords: DanglingWords): boolean {
  const last = words[words.length - 1];
  return last !== undefined && Object.values(danglingWords).some((list) => list.includes(last));
}
