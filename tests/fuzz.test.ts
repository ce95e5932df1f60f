import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { check } from '../compiler/check/check.ts';
import { CODES } from '../compiler/diagnostics/codes.ts';
import type { Diagnostic } from '../compiler/diagnostics/diagnostic.ts';
import { tttLexer } from '../compiler/syntax/lexer.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { parse } from '../compiler/syntax/parse.ts';
import { rng } from './support/random.ts';

/** The stages under test: text in, a derived mini-batch program or diagnostics out. */
function frontEnd(text: string): { ok: boolean; diagnostics: Diagnostic[] } {
  const parsed = parse(text, 'fuzz.ttt');
  // Check even after syntax errors, so the checker also meets the partial ASTs of error recovery.
  const checked = check(parsed.source);
  if (!checked.layer || parsed.diagnostics.length)
    return { ok: false, diagnostics: [...parsed.diagnostics, ...checked.diagnostics] };
  // A spec that checks must also derive: an internal error here is a compiler bug.
  const compiled = compileSpec(text, { file: 'fuzz.ttt' });
  expect(compiled.diagnostics.map((d) => d.code)).not.toContain('TTT901');
  return compiled;
}

const examplesDir = resolve(import.meta.dirname, '../examples');
const examples = [
  ...readdirSync(examplesDir).filter((f) => f.endsWith('.ttt')),
  ...readdirSync(join(examplesDir, 'rules'))
    .filter((f) => f.endsWith('.ttt'))
    .map((f) => `rules/${f}`),
].sort();

const TOKENS = [
  'layer',
  'dim',
  'minibatch',
  'state',
  'param',
  'fn',
  'let',
  'return',
  'loss',
  'output',
  'update',
  'f32',
  'sgd',
  'decay',
  'momentum',
  'read',
  'before',
  'commit',
  'orthogonalize',
  'lr',
  '{',
  '}',
  'token',
  'position',
  'none',
  'eps',
  'x',
  'W',
  'D',
  'K',
  'sum',
  'layernorm',
  'transpose',
  'dot',
  '0',
  '1',
  '2.5',
  '1e-6',
  '-1',
  '->',
  '{',
  '}',
  '(',
  ')',
  '[',
  ']',
  ',',
  ':',
  ';',
  '=',
  '+',
  '-',
  '*',
  '/',
  '@',
  '#',
  '\n',
];
const CHARS = ['$', '!', '"', '\\', '`', '.', '\u00e9', '\u0000', '\t', ' ', '\r', 'é', '∑', '9', '_'];

type Mutation = (text: string, pick: (n: number) => number) => string;

/** Token boundaries of the original text, so token-level edits cut at real tokens. */
function tokenRanges(text: string): [number, number][] {
  return tttLexer.tokenize(text).tokens.map((t) => [t.startOffset, t.startOffset + t.image.length]);
}

const mutations: Record<string, Mutation> = {
  deleteChar: (t, pick) => {
    const i = pick(t.length);
    return t.slice(0, i) + t.slice(i + 1);
  },
  deleteToken: (t, pick) => {
    const ranges = tokenRanges(t);
    if (ranges.length === 0) return t;
    const [a, b] = ranges[pick(ranges.length)]!;
    return t.slice(0, a) + t.slice(b);
  },
  insertToken: (t, pick) => {
    const i = pick(t.length + 1);
    return `${t.slice(0, i)} ${TOKENS[pick(TOKENS.length)]} ${t.slice(i)}`;
  },
  insertChar: (t, pick) => {
    const i = pick(t.length + 1);
    return t.slice(0, i) + CHARS[pick(CHARS.length)] + t.slice(i);
  },
  swapTokens: (t, pick) => {
    const ranges = tokenRanges(t);
    if (ranges.length < 2) return t;
    const [x, y] = [pick(ranges.length), pick(ranges.length)].sort((p, q) => p - q);
    const [a, b] = ranges[x!]!;
    const [c, d] = ranges[y!]!;
    if (x === y) return t;
    return t.slice(0, a) + t.slice(c, d) + t.slice(b, c) + t.slice(a, b) + t.slice(d);
  },
  truncate: (t, pick) => t.slice(0, pick(t.length)),
};

function expectWellFormed(text: string): void {
  const result = frontEnd(text);
  expect(result.ok || result.diagnostics.length > 0, text).toBe(true);
  for (const d of result.diagnostics) {
    expect(Object.keys(CODES), d.message).toContain(d.code);
    expect(d.span.start.offset).toBeGreaterThanOrEqual(0);
    expect(d.span.end.offset).toBeLessThanOrEqual(text.length);
    expect(d.span.start.offset).toBeLessThanOrEqual(d.span.end.offset);
    expect(d.span.start.line).toBeGreaterThanOrEqual(1);
    expect(d.span.start.col).toBeGreaterThanOrEqual(1);
  }
}

describe.each(examples)('fuzzing %s', (name) => {
  const original = readFileSync(join(examplesDir, name), 'utf8');

  it.each(Object.keys(mutations))('%s, then random further edits', (kind) => {
    const pick = (() => {
      const random = rng(name.length * 1009 + kind.length * 7919 + kind.charCodeAt(0));
      return (n: number) => Math.floor(random() * n);
    })();
    const all = Object.values(mutations);
    for (let i = 0; i < 12; i++) {
      let text = mutations[kind]!(original, pick);
      // Half the cases stack one to three more random edits on top.
      for (let extra = pick(2) * (1 + pick(3)); extra > 0; extra--) text = all[pick(all.length)]!(text, pick);
      expectWellFormed(text);
    }
  });
});

describe('hostile inputs', () => {
  it.each([
    ['empty', ''],
    ['only a comment', '# nothing here'],
    ['binary noise', String.fromCharCode(...Array.from({ length: 300 }, (_, i) => (i * 37) % 256))],
    ['deep parentheses', `layer T { dim D = ${'('.repeat(5000)}1${')'.repeat(5000)} }`],
    ['a long minus run', `layer T { dim D = ${'-'.repeat(5000)}1 }`],
    ['a very long sum', `layer T { dim D = ${Array(5000).fill('1').join(' + ')} }`],
    ['unclosed everything', 'layer T { fn f(x: [D'],
    ['keywords only', 'layer dim minibatch state param fn let return loss output update f32'],
    ['huge numbers', 'layer T { dim D = 1e999 minibatch K = 99999999999999999999 * 99999999999 }'],
  ])('%s', (_, text) => expectWellFormed(text));
});
