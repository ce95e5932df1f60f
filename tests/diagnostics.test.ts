import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { check } from '../compiler/check/check.ts';
import { CODES } from '../compiler/diagnostics/codes.ts';
import { formatDiagnostic, type Diagnostic } from '../compiler/diagnostics/diagnostic.ts';
import type { FormRequest } from '../compiler/dualform/forms.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { parse } from '../compiler/syntax/parse.ts';

/** Syntax diagnostics, or the checker's when the syntax is clean; with a form, the whole pipeline's. */
function diagnose(text: string, overrides: Record<string, number> = {}, form?: FormRequest): Diagnostic[] {
  if (form)
    return compileSpec(text, { file: 'bad.ttt', overrides: new Map(Object.entries(overrides)), form }).diagnostics;
  const parsed = parse(text, 'bad.ttt');
  if (parsed.diagnostics.length) return parsed.diagnostics;
  return check(parsed.source, new Map(Object.entries(overrides))).diagnostics;
}

/**
 * A valid layer, one part per line so that each line number is fixed:
 * 1 layer, 2 dim, 3 minibatch, 4 state, 5 extra, 6 loss, 7 output, 8 update, 9 `}`.
 */
const BASE = {
  dim: 'dim D = 4',
  minibatch: 'minibatch K = 2',
  state: 'state W: [D, D]',
  extra: '',
  loss: 'loss(k: [D], v: [D]) = 0.5 * sum(square(k @ W - v))',
  output: 'output(q: [D]) = q @ W',
  update: 'update sgd(lr: token, scale: position)',
};

/** 300 fns calling each other in a cycle, on one line. */
const CYCLE = Array.from({ length: 300 }, (_, i) => `fn g${i}(x: [D]) -> [D] = g${(i + 1) % 300}(x)`).join(' ');

function spec(parts: Partial<typeof BASE>): string {
  const p = { ...BASE, ...parts };
  return `layer T {\n${[p.dim, p.minibatch, p.state, p.extra, p.loss, p.output, p.update].map((l) => `  ${l}`).join('\n')}\n}\n`;
}

interface Case {
  what: string;
  text: string;
  overrides?: Record<string, number>;
  /** Compile through the dual-form derivation with this form request. */
  form?: FormRequest;
  code: keyof typeof CODES;
  /** Line and column of the span's start, and the text under the span. */
  line: number;
  col: number;
  under: string;
}

// One line per case keeps the table readable.
// prettier-ignore
const cases: Case[] = [
  // TTT1xx: syntax
  { what: 'a stray character', text: spec({ extra: 'param g: [D] $' }), code: 'TTT101', line: 5, col: 16, under: '$' },
  { what: 'a missing comma in a type', text: spec({ extra: 'param g: [D D]' }), code: 'TTT102', line: 5, col: 15, under: 'D' },
  { what: 'a missing operand', text: spec({ output: 'output(q: [D]) = q @ * W' }), code: 'TTT102', line: 7, col: 24, under: '*' },
  { what: 'a keyword as a name', text: spec({ extra: 'state loss: [D]' }), code: 'TTT102', line: 5, col: 9, under: 'loss' },
  { what: 'the file ends inside the layer', text: 'layer T {\n  state W: [D, D', code: 'TTT103', line: 2, col: 17, under: '' },
  { what: 'an empty file', text: '', code: 'TTT103', line: 1, col: 1, under: '' },
  { what: 'a second layer', text: `${spec({})}layer U {}\n`, code: 'TTT104', line: 10, col: 1, under: 'layer' },
  { what: 'a positional argument after a named one', text: spec({ output: 'output(q: [D]) = layernorm(eps: 1e-5, q @ W)' }), code: 'TTT105', line: 7, col: 41, under: 'q @ W' },
  { what: 'nesting too deep', text: spec({ extra: `dim E = ${'('.repeat(70)}1${')'.repeat(70)}` }), code: 'TTT106', line: 5, col: 75, under: '(' },
  // TTT2xx: names
  { what: 'an unknown name', text: spec({ output: 'output(q: [D]) = q @ V' }), code: 'TTT201', line: 7, col: 24, under: 'V' },
  { what: 'a duplicate state', text: spec({ extra: 'state W: [D]' }), code: 'TTT202', line: 5, col: 9, under: 'W' },
  { what: 'a let that repeats a parameter', text: spec({ extra: 'fn f(x: [D]) -> [D] { let x = x; return x }' }), code: 'TTT202', line: 5, col: 29, under: 'x' },
  { what: 'a second loss', text: spec({ extra: 'loss(k: [D]) = sum(k)' }), code: 'TTT202', line: 6, col: 3, under: 'loss' },
  { what: 'calling a state', text: spec({ output: 'output(q: [D]) = W(q)' }), code: 'TTT203', line: 7, col: 20, under: 'W' },
  { what: 'a state used as a size', text: spec({ extra: 'param g: [W]' }), code: 'TTT203', line: 5, col: 13, under: 'W' },
  { what: 'a fn used as a value', text: spec({ extra: 'fn f(x: [D]) = x', output: 'output(q: [D]) = q * f' }), code: 'TTT203', line: 7, col: 24, under: 'f' },
  { what: 'a recursive fn', text: spec({ extra: 'fn f(x: [D]) -> [D] = f(x) * 2' }), code: 'TTT204', line: 5, col: 25, under: 'f(x)' },
  { what: 'no loss', text: spec({ loss: '' }), code: 'TTT205', line: 1, col: 7, under: 'T' },
  { what: 'no minibatch', text: spec({ minibatch: '' }), code: 'TTT205', line: 1, col: 7, under: 'T' },
  { what: 'an unknown function', text: spec({ output: 'output(q: [D]) = softmax(q @ W)' }), code: 'TTT206', line: 7, col: 20, under: 'softmax' },
  { what: 'an unknown named argument', text: spec({ output: 'output(q: [D]) = q * sum(q, eps: 1e-5)' }), code: 'TTT207', line: 7, col: 31, under: 'eps: 1e-5' },
  { what: 'an unknown update argument', text: spec({ update: 'update sgd(lr: token, scale: none, nesterov: 0.9)' }), code: 'TTT207', line: 8, col: 38, under: 'nesterov' },
  { what: 'a layer with no view', text: spec({ loss: 'loss() = sum(square(W))', output: 'output() = W' }), code: 'TTT209', line: 1, col: 7, under: 'T' },
  { what: 'a cycle of fns too long to follow', text: spec({ extra: CYCLE }), code: 'TTT210', line: 5, col: 3 + CYCLE.indexOf('g255(x)'), under: 'g255(x)' },
  { what: 'too few arguments', text: spec({ output: 'output(q: [D]) = q * dot(q)' }), code: 'TTT208', line: 7, col: 24, under: 'dot(q)' },
  // TTT3xx: sizes and shapes
  { what: 'a zero dim', text: spec({ dim: 'dim D = 0' }), code: 'TTT301', line: 2, col: 11, under: '0' },
  { what: 'a bad -D value', text: spec({}), overrides: { D: 0 }, code: 'TTT301', line: 2, col: 7, under: 'D' },
  { what: 'a dim that uses a later one', text: spec({ dim: 'dim D = 2 * H', extra: 'dim H = 2' }), code: 'TTT302', line: 2, col: 15, under: 'H' },
  { what: 'an unknown dim in a type', text: spec({ extra: 'param g: [E]' }), code: 'TTT302', line: 5, col: 13, under: 'E' },
  { what: 'an inexact division', text: spec({ extra: 'dim E = D / 3' }), code: 'TTT303', line: 5, col: 11, under: 'D / 3' },
  { what: 'an elementwise shape mismatch', text: spec({ extra: 'param g: [K]', output: 'output(q: [D]) = 2 * (q + g)' }), code: 'TTT304', line: 7, col: 24, under: '(q + g)' },
  { what: 'a matrix against a vector of another width', text: spec({ extra: 'param g: [K]', output: 'output(q: [D]) = sum(W * g) * q' }), code: 'TTT304', line: 7, col: 24, under: 'W * g' },
  { what: 'min of shapes that do not broadcast', text: spec({ extra: 'param g: [K]', output: 'output(q: [D]) = min(q, g)' }), code: 'TTT304', line: 7, col: 20, under: 'min(q, g)' },
  { what: 'concat of a vector and a matrix', text: spec({ output: 'output(q: [D]) = sum(concat(q, W)) * q' }), code: 'TTT304', line: 7, col: 24, under: 'concat(q, W)' },
  { what: 'outer of a matrix', text: spec({ output: 'output(q: [D]) = sum(outer(W, q)) * q' }), code: 'TTT311', line: 7, col: 30, under: 'W' },
  { what: 'a matmul inner-size mismatch', text: spec({ extra: 'param P: [K, D]', output: 'output(q: [D]) = q @ P' }), code: 'TTT305', line: 7, col: 20, under: 'q @ P' },
  { what: 'a matmul with a scalar', text: spec({ output: 'output(q: [D]) = q @ q @ W' }), code: 'TTT305', line: 7, col: 20, under: 'q @ q @ W' },
  { what: 'a -D override of an unknown name', text: spec({}), overrides: { Q: 3 }, code: 'TTT306', line: 1, col: 7, under: 'T' },
  { what: 'a rank-3 type', text: spec({ extra: 'state B: [D, D, D]' }), code: 'TTT307', line: 5, col: 12, under: '[D, D, D]' },
  { what: 'a loss that is not a scalar', text: spec({ loss: 'loss(k: [D], v: [D]) = k @ W - v' }), code: 'TTT308', line: 6, col: 26, under: 'k @ W - v' },
  { what: 'a wrong return type', text: spec({ extra: 'fn f(x: [D]) -> [D, D] = x @ W' }), code: 'TTT309', line: 5, col: 28, under: 'x @ W' },
  { what: 'a view with two shapes', text: spec({ output: 'output(k: [K]) = k' }), code: 'TTT310', line: 7, col: 10, under: 'k: [K]' },
  { what: 'transpose of a vector', text: spec({ output: 'output(q: [D]) = transpose(q)' }), code: 'TTT311', line: 7, col: 30, under: 'q' },
  { what: 'an unknown update rule', text: spec({ update: 'update adam(lr: token, scale: position)' }), code: 'TTT312', line: 8, col: 10, under: 'adam' },
  { what: 'a bad learning rate', text: spec({ update: 'update sgd(lr: position, scale: position)' }), code: 'TTT313', line: 8, col: 18, under: 'position' },
  { what: 'a zero learning rate', text: spec({ update: 'update sgd(lr: 0, scale: position)' }), code: 'TTT313', line: 8, col: 18, under: '0' },
  { what: 'a bad scale', text: spec({ update: 'update sgd(lr: token, scale: token)' }), code: 'TTT314', line: 8, col: 32, under: 'token' },
  { what: 'a fn argument of the wrong shape', text: spec({ extra: 'fn f(x: [D]) = x', output: 'output(q: [D]) = f(W)' }), code: 'TTT315', line: 7, col: 22, under: 'W' },
  { what: 'a function call in a size', text: spec({ extra: 'dim E = sqrt(4)' }), code: 'TTT316', line: 5, col: 11, under: 'sqrt(4)' },
  { what: 'a computed exponent', text: spec({ output: 'output(q: [D]) = pow(q, sum(q)) @ W' }), code: 'TTT340', line: 7, col: 27, under: 'sum(q)' },
  // TTT34x: update rules beyond plain sgd
  { what: 'a decay above 1', text: spec({ update: 'update sgd(lr: token, decay: 1.5)' }), code: 'TTT341', line: 8, col: 32, under: '1.5' },
  { what: 'a momentum that is a word', text: spec({ update: 'update sgd(lr: token, momentum: position)' }), code: 'TTT341', line: 8, col: 35, under: 'position' },
  { what: 'an unknown read order', text: spec({ update: 'update sgd(lr: token, read: later)' }), code: 'TTT342', line: 8, col: 31, under: 'later' },
  { what: 'a commit transform with causal reading', text: spec({ update: 'update sgd(lr: token) { commit W = W * 0.5 }' }), code: 'TTT343', line: 8, col: 27, under: 'commit W = W * 0.5' },
  { what: 'orthogonalize with causal reading', text: spec({ update: 'update sgd(lr: token, read: causal) { orthogonalize W }' }), code: 'TTT343', line: 8, col: 41, under: 'orthogonalize W' },
  { what: 'a per-state rate naming a param', text: spec({ extra: 'param g: [D]', update: 'update sgd(lr: token) { lr g: token }' }), code: 'TTT344', line: 8, col: 30, under: 'g' },
  { what: 'a commit of a name declared nowhere', text: spec({ update: 'update sgd(lr: token, read: after) { commit V = W }' }), code: 'TTT344', line: 8, col: 47, under: 'V' },
  { what: 'a commit transform of the wrong shape', text: spec({ update: 'update sgd(lr: token, read: after) { commit W = sum(W) }' }), code: 'TTT345', line: 8, col: 51, under: 'sum(W)' },
  { what: 'a commit transform that reads a view', text: spec({ update: 'update sgd(lr: token, read: after) { commit W = W * k }' }), code: 'TTT201', line: 8, col: 55, under: 'k' },
  { what: 'a scale with decay', text: spec({ update: 'update sgd(lr: token, scale: position, decay: 0.9)' }), code: 'TTT346', line: 8, col: 32, under: 'position' },
  { what: 'orthogonalize of a vector', text: spec({ extra: 'state c: [D]', update: 'update sgd(lr: token, read: before) { orthogonalize c }' }), code: 'TTT347', line: 8, col: 55, under: 'c' },
  { what: 'orthogonalize with momentum', text: spec({ update: 'update sgd(lr: token, momentum: 0.9, read: before) { orthogonalize W }' }), code: 'TTT347', line: 8, col: 56, under: 'orthogonalize W' },
  { what: 'an unknown update statement', text: spec({ update: 'update sgd(lr: token) { momentum W: 0.9 }' }), code: 'TTT348', line: 8, col: 27, under: 'momentum W: 0.9' },
  { what: 'zero Newton–Schulz steps', text: spec({ update: 'update sgd(lr: token, read: before) { orthogonalize W(steps: 0) }' }), code: 'TTT349', line: 8, col: 64, under: '0' },
  { what: 'a state without a rate', text: spec({ extra: 'state c: [D]', update: 'update sgd(read: before) { lr W: token }' }), code: 'TTT350', line: 8, col: 3, under: 'update sgd(read: before) { lr W: token }' },
  { what: 'two rates for one state', text: spec({ update: 'update sgd(lr: token) { lr W: token; lr W: 0.1 }' }), code: 'TTT202', line: 8, col: 43, under: 'W' },
  { what: 'a zero eps', text: spec({ output: 'output(q: [D]) = rmsnorm(q, eps: 0)' }), code: 'TTT317', line: 7, col: 36, under: '0' },
  { what: 'a number beyond f32', text: spec({ output: 'output(q: [D]) = q @ W * 1e39' }), code: 'TTT318', line: 7, col: 28, under: '1e39' },
  { what: 'a learning rate beyond f32', text: spec({ update: 'update sgd(lr: 1e39, scale: none)' }), code: 'TTT318', line: 8, col: 18, under: '1e39' },
  { what: 'a number that overflows f64', text: spec({ output: 'output(q: [D]) = q @ W * 1e999' }), code: 'TTT318', line: 7, col: 28, under: '1e999' },
  { what: 'a NaN square root', text: spec({ output: 'output(q: [D]) = q @ W * sqrt(0 - 1)' }), code: 'TTT319', line: 7, col: 28, under: 'sqrt(0 - 1)' },
  { what: 'the log of zero', text: spec({ output: 'output(q: [D]) = q @ W + log(0)' }), code: 'TTT319', line: 7, col: 28, under: 'log(0)' },
  { what: 'a division by zero', text: spec({ output: 'output(q: [D]) = q @ W * (2 / 0)' }), code: 'TTT319', line: 7, col: 28, under: '(2 / 0)' },
  { what: 'a product of constants beyond f32', text: spec({ output: 'output(q: [D]) = q @ W * (1e20 * 1e20)' }), code: 'TTT319', line: 7, col: 28, under: '(1e20 * 1e20)' },
  { what: 'a constant beyond f32 through a let', text: spec({ output: 'output(q: [D]) {\n let c = 1e30\n return q @ W * (c * c) }' }), form: 'auto', code: 'TTT319', line: 9, col: 9, under: 'q @ W * (c * c)' },
  { what: 'a dim beyond 32-bit indices', text: spec({ dim: 'dim D = 4294967296' }), code: 'TTT320', line: 2, col: 11, under: '4294967296' },
  { what: 'a -D value beyond 32-bit indices', text: spec({}), overrides: { D: 4294967296 }, code: 'TTT320', line: 2, col: 7, under: 'D' },
  { what: 'a state beyond 32-bit indices', text: spec({ dim: 'dim D = 65536' }), code: 'TTT320', line: 4, col: 12, under: '[D, D]' },
  { what: 'states and accumulators beyond 32-bit indices together', text: spec({ dim: 'dim D = 32768', state: 'state W: [D, D]', extra: 'state U: [D]' }), code: 'TTT320', line: 1, col: 7, under: 'T' },
  { what: 'a mini-batch of a view beyond 32-bit indices', text: spec({ dim: 'dim D = 4', minibatch: 'minibatch K = 1073741824' }), code: 'TTT320', line: 6, col: 8, under: 'k: [D]' },
  // TTT4xx: dual form forced where a state has none
  { what: 'a state inside a norm, dual forced', text: spec({ output: 'output(q: [D]) = q @ l2norm(W)' }), form: 'dual', code: 'TTT401', line: 7, col: 31, under: 'W' },
  { what: 'a state on the left of a matmul, dual forced', text: spec({ output: 'output(q: [D]) = W @ q' }), form: 'dual', code: 'TTT401', line: 7, col: 20, under: 'W' },
  { what: 'a state as matmul operand and elementwise, dual forced', text: spec({ loss: 'loss(k: [D], v: [D]) = sum(square(k @ W - v)) + sum(W * W)' }), form: 'dual', code: 'TTT402', line: 6, col: 55, under: 'W' },
];

describe('malformed specs', () => {
  it.each(cases)('$code: $what', ({ text, overrides, form, code, line, col, under }) => {
    const diagnostics = diagnose(text, overrides, form);
    expect(diagnostics.length, JSON.stringify(diagnostics, null, 1)).toBeGreaterThan(0);
    const d = diagnostics[0]!;
    expect({
      code: d.code,
      line: d.span.start.line,
      col: d.span.start.col,
      under: text.slice(d.span.start.offset, d.span.end.offset),
    }).toEqual({
      code,
      line,
      col,
      under,
    });
    expect(d.severity).toBe('error');
    expect(d.span.file).toBe('bad.ttt');
    expect(d.hint.length).toBeGreaterThan(0);
  });

  it('covers every syntax, name and shape code', () => {
    const covered = new Set(cases.map((c) => c.code));
    const frontEndCodes = Object.keys(CODES).filter((c) => /^TTT[123]/.test(c));
    expect(frontEndCodes.filter((c) => !covered.has(c as keyof typeof CODES))).toEqual([]);
  });
});

describe('several errors at once', () => {
  it('the parser recovers and reports each syntax error', () => {
    const text = spec({
      extra: 'param g: [D D]',
      output: 'output(q: [D]) = q @ * W',
      update: 'update sgd(lr: token, scale: position',
    });
    expect(diagnose(text).map((d) => [d.code, d.span.start.line])).toEqual([
      ['TTT102', 5],
      ['TTT102', 7],
      ['TTT102', 9],
    ]);
  });

  it('the checker reports every error in one pass, in source order', () => {
    const text = spec({
      dim: 'dim D = 4 / 3',
      extra: 'state B: [K, K, K]',
      loss: 'loss(k: [K], v: [K]) = k @ W + nope',
      output: 'output(q: [K]) = W(q) + gelu(q, q)',
      update: 'update sgd(lr: 1e999, scale: none)',
    });
    // W's type uses the failed D, so `k @ W` is not reported again.
    expect(diagnose(text).map((d) => [d.code, d.span.start.line])).toEqual([
      ['TTT303', 2],
      ['TTT307', 5],
      ['TTT201', 6],
      ['TTT203', 7],
      ['TTT208', 7],
      ['TTT313', 8],
    ]);
  });
});

describe('formatDiagnostic', () => {
  it('shows file:line:col, the source line, carets under the span and a hint', () => {
    const text = spec({ output: 'output(q: [D]) = q @ V' });
    const out = formatDiagnostic(diagnose(text)[0]!, text);
    expect(out).toContain('bad.ttt:7:24: error TTT201: unknown name');
    expect(out).toContain('7 |   output(q: [D]) = q @ V');
    expect(out).toMatch(/\n {2}\| {24}\^\n/);
    expect(out).toContain(`hint: ${CODES.TTT201.hint}`);
  });

  it('underlines the whole span', () => {
    const text = spec({ output: 'output(q: [D]) = softmax(q @ W)' });
    expect(formatDiagnostic(diagnose(text)[0]!, text)).toContain(`| ${' '.repeat(19)}^^^^^^^\n`);
  });
});

describe('the catalogue', () => {
  it('docs/language.md lists every code, and only those', () => {
    const docs = readFileSync(resolve(import.meta.dirname, '../docs/language.md'), 'utf8');
    const documented = new Set([...docs.matchAll(/^\| `?(TTT\d{3})`? \|/gm)].map((m) => m[1]));
    expect([...documented].sort()).toEqual(Object.keys(CODES).sort());
  });

  it('codes are unique within their ranges and have a title and a hint', () => {
    for (const [code, info] of Object.entries(CODES)) {
      expect(code).toMatch(/^TTT[1-69]\d\d$/);
      expect(info.title.length).toBeGreaterThan(0);
      expect(info.hint.length).toBeGreaterThan(0);
    }
  });
});
