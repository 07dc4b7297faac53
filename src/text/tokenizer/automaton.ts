/**
 * A small longest-match lexer engine in the style of JFlex, the generator Stanford's PTBLexer is built with.
 *
 * Why not JavaScript regular expressions: they are backtracking and return the first alternative that
 * matches, while a JFlex scanner always takes the longest match over all rules (ties: the earliest
 * rule) and counts trailing context (`r1/r2`) in that length. Emulating the Java tokenizer exactly needs
 * those semantics, so patterns are compiled to one NFA and run as a lazily built DFA.
 *
 * Pattern syntax (a JFlex subset): literals (letters match both cases: the scanner is `%caseless`, which
 * does not extend into character classes), `[...]` classes with ranges, `^` negation, `\uXXXX` and
 * `\p{...}` Unicode properties, `.` (anything but `\n`), `( )`, `|`, `* + ?`, `{m}`, `{m,n}`, and macro
 * references `{NAME}`.
 */

/** A set of UTF-16 code units. Input is handled unit by unit, as JFlex 1.4 scanners do. */
export class CharSet {
  constructor(
    readonly ranges: ReadonlyArray<readonly [number, number]>,
    readonly props: ReadonlyArray<RegExp>,
    readonly negated: boolean,
  ) {}

  has(code: number): boolean {
    let inSet = false;
    for (const [lo, hi] of this.ranges) {
      if (code >= lo && code <= hi) {
        inSet = true;
        break;
      }
    }
    if (!inSet && this.props.length > 0) {
      const ch = String.fromCharCode(code);
      inSet = this.props.some((p) => p.test(ch));
    }
    return inSet !== this.negated;
  }
}

type Ast =
  | { kind: 'set'; set: CharSet }
  | { kind: 'seq'; items: Ast[] }
  | { kind: 'alt'; items: Ast[] }
  | { kind: 'rep'; item: Ast; min: number; max: number };

const NAMED_CLASSES: Record<string, RegExp> = {
  // JFlex [:letter:] is Character.isLetter, [:digit:] Character.isDigit, [:uppercase:] Character.isUpperCase.
  letter: /\p{L}/u,
  digit: /\p{Nd}/u,
  uppercase: /\p{Lu}/u,
};

function caselessSet(code: number): CharSet {
  const ch = String.fromCharCode(code);
  const variants = new Set([code]);
  for (const v of [ch.toLowerCase(), ch.toUpperCase()]) if (v.length === 1) variants.add(v.charCodeAt(0));
  return new CharSet(
    [...variants].map((c) => [c, c] as const),
    [],
    false,
  );
}

const SIMPLE_ESCAPES: Record<string, number> = { t: 9, n: 10, r: 13, f: 12, b: 8 };

class PatternParser {
  private pos = 0;

  constructor(
    private readonly src: string,
    private readonly macro: (name: string) => Ast,
  ) {}

  parse(): Ast {
    const ast = this.alternation();
    if (this.pos !== this.src.length) throw new Error(`pattern syntax error at ${this.pos} in ${this.src}`);
    return ast;
  }

  private peek(): string {
    return this.src[this.pos] ?? '';
  }

  private alternation(): Ast {
    const items = [this.sequence()];
    while (this.peek() === '|') {
      this.pos++;
      items.push(this.sequence());
    }
    return items.length === 1 ? items[0] : { kind: 'alt', items };
  }

  private sequence(): Ast {
    const items: Ast[] = [];
    while (this.pos < this.src.length && this.peek() !== '|' && this.peek() !== ')') items.push(this.quantified());
    return items.length === 1 ? items[0] : { kind: 'seq', items };
  }

  private quantified(): Ast {
    let atom = this.atom();
    for (;;) {
      const c = this.peek();
      if (c === '*') atom = { kind: 'rep', item: atom, min: 0, max: Infinity };
      else if (c === '+') atom = { kind: 'rep', item: atom, min: 1, max: Infinity };
      else if (c === '?') atom = { kind: 'rep', item: atom, min: 0, max: 1 };
      else if (c === '{' && /^\{\d+(,\d+)?\}/.test(this.src.slice(this.pos))) {
        const m = /^\{(\d+)(?:,(\d+))?\}/.exec(this.src.slice(this.pos))!;
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : Number(m[2]);
        atom = { kind: 'rep', item: atom, min, max };
        this.pos += m[0].length - 1;
      } else break;
      this.pos++;
    }
    return atom;
  }

  private atom(): Ast {
    const c = this.peek();
    if (c === '(') {
      this.pos++;
      const inner = this.peek() === ')' ? ({ kind: 'seq', items: [] } as Ast) : this.alternation();
      if (this.peek() !== ')') throw new Error(`missing ) in ${this.src}`);
      this.pos++;
      return inner;
    }
    if (c === '[') {
      const named = /^\[:(\w+):\]/.exec(this.src.slice(this.pos));
      if (named) {
        this.pos += named[0].length;
        const re = NAMED_CLASSES[named[1]];
        if (!re) throw new Error(`unknown class ${named[0]}`);
        return { kind: 'set', set: new CharSet([], [re], false) };
      }
      return { kind: 'set', set: this.charClass() };
    }
    if (c === '{') {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}/.exec(this.src.slice(this.pos));
      if (!m) throw new Error(`bad macro reference at ${this.pos} in ${this.src}`);
      this.pos += m[0].length;
      return this.macro(m[1]);
    }
    if (c === '.') {
      this.pos++;
      return { kind: 'set', set: new CharSet([[10, 10]], [], true) };
    }
    if (c === '\\') {
      const esc = this.escape();
      if (esc instanceof CharSet) return { kind: 'set', set: esc };
      return { kind: 'set', set: caselessSet(esc) };
    }
    this.pos++;
    return { kind: 'set', set: caselessSet(c.charCodeAt(0)) };
  }

  /** Reads an escape at `pos` (which is a backslash): a code unit, or a CharSet for `\p{..}`. */
  private escape(): number | CharSet {
    this.pos++;
    const c = this.peek();
    if (c === 'u') {
      const hex = this.src.slice(this.pos + 1, this.pos + 5);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Error(`bad \\u escape in ${this.src}`);
      this.pos += 5;
      return parseInt(hex, 16);
    }
    if (c === 'p') {
      const m = /^p\{([A-Za-z_]+)\}/.exec(this.src.slice(this.pos));
      if (!m) throw new Error(`bad \\p escape in ${this.src}`);
      this.pos += m[0].length;
      return new CharSet([], [new RegExp(`\\p{${m[1]}}`, 'u')], false);
    }
    this.pos++;
    return SIMPLE_ESCAPES[c] ?? c.charCodeAt(0);
  }

  private charClass(): CharSet {
    this.pos++; // [
    let negated = false;
    if (this.peek() === '^') {
      negated = true;
      this.pos++;
    }
    const ranges: [number, number][] = [];
    const props: RegExp[] = [];
    let first = true;
    while (this.pos < this.src.length && (this.peek() !== ']' || first)) {
      first = false;
      let lo: number;
      if (this.peek() === '\\') {
        const esc = this.escape();
        if (esc instanceof CharSet) {
          props.push(...esc.props);
          continue;
        }
        lo = esc;
      } else {
        lo = this.src.charCodeAt(this.pos++);
      }
      let hi = lo;
      if (this.peek() === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length) {
        this.pos++;
        if (this.peek() === '\\') {
          const esc = this.escape();
          if (esc instanceof CharSet) throw new Error(`bad range in ${this.src}`);
          hi = esc;
        } else hi = this.src.charCodeAt(this.pos++);
      }
      ranges.push([lo, hi]);
    }
    if (this.peek() !== ']') throw new Error(`missing ] in ${this.src}`);
    this.pos++;
    return new CharSet(ranges, props, negated);
  }
}

/** Named patterns that rules and other macros refer to as `{NAME}`; each is parsed once. */
export class MacroTable {
  private readonly parsed = new Map<string, Ast>();

  constructor(private readonly sources: Record<string, string>) {}

  get(name: string): Ast {
    let ast = this.parsed.get(name);
    if (!ast) {
      const src = this.sources[name];
      if (src === undefined) throw new Error(`unknown macro {${name}}`);
      ast = new PatternParser(src, (n) => this.get(n)).parse();
      this.parsed.set(name, ast);
    }
    return ast;
  }

  parse(pattern: string): Ast {
    return new PatternParser(pattern, (n) => this.get(n)).parse();
  }
}

/** Thompson NFA: state i has epsilon moves `eps[i]`, labelled moves `moves[i]`, and `accept[i]` (rule or -1). */
class Nfa {
  readonly eps: number[][] = [];
  readonly moves: { set: CharSet; to: number }[][] = [];
  readonly accept: number[] = [];

  state(): number {
    this.eps.push([]);
    this.moves.push([]);
    this.accept.push(-1);
    return this.eps.length - 1;
  }

  /** Adds `ast` between two new states and returns them. */
  build(ast: Ast): [number, number] {
    switch (ast.kind) {
      case 'set': {
        const s = this.state();
        const e = this.state();
        this.moves[s].push({ set: ast.set, to: e });
        return [s, e];
      }
      case 'seq': {
        const s = this.state();
        let cur = s;
        for (const item of ast.items) {
          const [is, ie] = this.build(item);
          this.eps[cur].push(is);
          cur = ie;
        }
        return [s, cur];
      }
      case 'alt': {
        const s = this.state();
        const e = this.state();
        for (const item of ast.items) {
          const [is, ie] = this.build(item);
          this.eps[s].push(is);
          this.eps[ie].push(e);
        }
        return [s, e];
      }
      case 'rep': {
        const s = this.state();
        let cur = s;
        for (let i = 0; i < ast.min; i++) {
          const [is, ie] = this.build(ast.item);
          this.eps[cur].push(is);
          cur = ie;
        }
        if (ast.max === Infinity) {
          const [is, ie] = this.build(ast.item);
          this.eps[cur].push(is);
          this.eps[ie].push(is);
          const e = this.state();
          this.eps[cur].push(e);
          this.eps[ie].push(e);
          return [s, e];
        }
        const e = this.state();
        this.eps[cur].push(e);
        for (let i = ast.min; i < ast.max; i++) {
          const [is, ie] = this.build(ast.item);
          this.eps[cur].push(is);
          this.eps[ie].push(e);
          cur = ie;
        }
        return [s, e];
      }
    }
  }
}

interface DState {
  readonly states: Int32Array;
  /** Lowest-numbered rule accepting here, or -1. */
  readonly accept: number;
  readonly ascii: (DState | null | undefined)[];
  readonly other: Map<number, DState | null>;
}

/** A set of rules (ASTs, highest priority first) run as one lazily determinised automaton. */
export class Automaton {
  private readonly nfa = new Nfa();
  private readonly start: DState;
  private readonly cache = new Map<string, DState>();
  private readonly mark: Int32Array;
  private generation = 0;

  constructor(rules: Ast[]) {
    const s = this.nfa.state();
    rules.forEach((ast, i) => {
      const [rs, re] = this.nfa.build(ast);
      this.nfa.eps[s].push(rs);
      this.nfa.accept[re] = i;
    });
    this.mark = new Int32Array(this.nfa.eps.length);
    this.start = this.dstate(this.closure([s]));
  }

  private closure(seed: number[]): number[] {
    this.generation++;
    const out: number[] = [];
    const stack = [...seed];
    while (stack.length > 0) {
      const q = stack.pop()!;
      if (this.mark[q] === this.generation) continue;
      this.mark[q] = this.generation;
      out.push(q);
      for (const t of this.nfa.eps[q]) if (this.mark[t] !== this.generation) stack.push(t);
    }
    return out.sort((a, b) => a - b);
  }

  private dstate(states: number[]): DState {
    const key = states.join(',');
    let d = this.cache.get(key);
    if (!d) {
      let accept = -1;
      for (const q of states) {
        const a = this.nfa.accept[q];
        if (a >= 0 && (accept < 0 || a < accept)) accept = a;
      }
      d = { states: Int32Array.from(states), accept, ascii: new Array(128), other: new Map() };
      this.cache.set(key, d);
    }
    return d;
  }

  private step(d: DState, code: number): DState | null {
    const cached = code < 128 ? d.ascii[code] : d.other.get(code);
    if (cached !== undefined) return cached;
    const targets: number[] = [];
    for (const q of d.states) for (const m of this.nfa.moves[q]) if (m.set.has(code)) targets.push(m.to);
    const next = targets.length === 0 ? null : this.dstate(this.closure(targets));
    if (code < 128) d.ascii[code] = next;
    else d.other.set(code, next);
    return next;
  }

  /** Longest match starting at `from`: its end and the winning rule, or null when nothing matches. */
  longest(text: string, from: number, to = text.length): { end: number; rule: number } | null {
    let d: DState | null = this.start;
    let best: { end: number; rule: number } | null = null;
    for (let i = from; i < to; i++) {
      d = this.step(d, text.charCodeAt(i));
      if (!d) break;
      if (d.accept >= 0) best = { end: i + 1, rule: d.accept };
    }
    return best;
  }

  /** Every end position e (from < e <= to) such that text[from, e) is matched. */
  ends(text: string, from: number, to: number): number[] {
    const out: number[] = [];
    let d: DState | null = this.start;
    for (let i = from; i < to && d; i++) {
      d = this.step(d, text.charCodeAt(i));
      if (d && d.accept >= 0) out.push(i + 1);
    }
    return out;
  }

  /** Whether text[from, to) as a whole is matched. */
  matchesExactly(text: string, from: number, to: number): boolean {
    let d: DState | null = this.start;
    for (let i = from; i < to && d; i++) d = this.step(d, text.charCodeAt(i));
    return d !== null && d.accept >= 0;
  }
}

export interface LexRule<A> {
  /** The rule's pattern. */
  pattern: string;
  /** Trailing context: the rule matches only when followed by this, which is not part of the token. */
  lookahead?: string;
  action: A;
}

export interface LexMatch<A> {
  action: A;
  /** Token text (trailing context excluded). */
  text: string;
  start: number;
  end: number;
}

/** A JFlex-style scanner over a rule list: longest match (lookahead counted), earliest rule on ties. */
export class Scanner<A> {
  private readonly all: Automaton;
  private readonly heads: (Automaton | null)[];
  private readonly tails: (Automaton | null)[];

  constructor(
    macros: MacroTable,
    private readonly rules: LexRule<A>[],
  ) {
    this.all = new Automaton(
      rules.map((r) => {
        const head = macros.parse(r.pattern);
        return r.lookahead ? ({ kind: 'seq', items: [head, macros.parse(r.lookahead)] } as Ast) : head;
      }),
    );
    this.heads = rules.map((r) => (r.lookahead ? new Automaton([macros.parse(r.pattern)]) : null));
    this.tails = rules.map((r) => (r.lookahead ? new Automaton([macros.parse(r.lookahead)]) : null));
  }

  /** The token at `from`, or null if no rule matches there. */
  match(text: string, from: number): LexMatch<A> | null {
    const best = this.all.longest(text, from);
    if (!best) return null;
    const rule = this.rules[best.rule];
    let end = best.end;
    const head = this.heads[best.rule];
    if (head) {
      // JFlex's general trailing context: the longest head whose remainder the lookahead matches.
      const tail = this.tails[best.rule]!;
      const cuts = head.ends(text, from, best.end);
      end = -1;
      for (let k = cuts.length - 1; k >= 0; k--) {
        if (tail.matchesExactly(text, cuts[k], best.end)) {
          end = cuts[k];
          break;
        }
      }
      if (end < 0) throw new Error('internal: trailing context split not found');
    }
    return { action: rule.action, text: text.slice(from, end), start: from, end };
  }
}
