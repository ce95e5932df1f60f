import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUILTINS } from '../compiler/check/builtins.ts';
import { check } from '../compiler/check/check.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import type { Expr, Member } from '../compiler/syntax/ast.ts';
import { parse } from '../compiler/syntax/parse.ts';

const examplesDir = resolve(import.meta.dirname, '../examples');
const examples = readdirSync(examplesDir)
  .filter((f) => f.endsWith('.ttt'))
  .sort();
const read = (name: string) => readFileSync(join(examplesDir, name), 'utf8');

function checkText(text: string, overrides: Record<string, number> = {}) {
  const parsed = parse(text, 'test.ttt');
  const checked = check(parsed.source, new Map(Object.entries(overrides)));
  const diagnostics = [...parsed.diagnostics, ...checked.diagnostics];
  if (diagnostics.length) throw new Error(formatDiagnostics(diagnostics, text));
  return { source: parsed.source, layer: checked.layer! };
}

/** Fully parenthesised form of an expression, to test precedence and associativity. */
function show(e: Expr): string {
  switch (e.kind) {
    case 'number':
      return String(e.value);
    case 'name':
      return e.name;
    case 'negate':
      return `(-${show(e.operand)})`;
    case 'binary':
      return `(${show(e.left)} ${e.op} ${show(e.right)})`;
    case 'call':
      return `${e.callee}(${[...e.args.map(show), ...e.named.map((n) => `${n.name}: ${show(n.value)}`)].join(', ')})`;
  }
}

/** A minimal valid layer with `extra` members and the output expression `out`. */
function layerWith(extra: string, out = 'q @ W'): string {
  return `layer T {
  dim D = 4
  minibatch K = 2
  state W: [D, D]
  ${extra}
  loss(k: [D], v: [D]) = 0.5 * sum(square(k @ W - v))
  output(q: [D]) = ${out}
  update sgd(lr: token, scale: position)
}`;
}

function member<K extends Member['kind']>(text: string, kind: K, index = 0): Member & { kind: K } {
  return checkText(text).source.layer!.members.filter((m) => m.kind === kind)[index] as Member & { kind: K };
}

const outputExpr = (out: string, extra = '') => member(layerWith(extra, out), 'output').body.result;

describe('examples', () => {
  it.each(examples)('%s parses and checks with no diagnostics', (name) => {
    const { layer } = checkText(read(name));
    expect(layer.states.length).toBeGreaterThan(0);
    expect(layer.loss.views.map((v) => v.name)).toEqual(['k', 'v']);
    expect(layer.output.views.map((v) => v.name)).toEqual(['q']);
    expect(layer.views.map((v) => v.name)).toEqual(['k', 'v', 'q']);
    const D = layer.dims.get('D')!;
    for (const view of layer.views) expect(view.shape).toEqual([D]);
    expect(layer.shapes.get(layer.loss.body.result)).toEqual([]);
    expect(layer.shapes.get(layer.output.body.result)).toEqual([D]);
  });

  it('ttt_mlp: sizes and shapes', () => {
    const { layer } = checkText(read('ttt_mlp.ttt'));
    expect(layer.name).toBe('TTTMLP');
    expect([...layer.dims]).toEqual([
      ['D', 64],
      ['H', 256],
    ]);
    expect(layer.minibatch).toEqual({ name: 'K', size: 16 });
    expect(layer.states.map((s) => [s.name, s.shape])).toEqual([
      ['W1', [64, 256]],
      ['b1', [256]],
      ['W2', [256, 64]],
      ['b2', [64]],
    ]);
    expect(layer.params.map((p) => [p.name, p.shape])).toEqual([
      ['gamma', [64]],
      ['beta', [64]],
    ]);
    expect(layer.update).toMatchObject({ rule: 'sgd', lr: { kind: 'token' }, scale: { kind: 'position' } });
    const f = layer.fns.get('f')!;
    const h = f.body.lets[0]!.value;
    expect(h.kind === 'call' && h.callee).toBe('gelu_tanh');
    expect(layer.shapes.get(h)).toEqual([256]);
    expect(h.kind === 'call' && layer.shapes.get(h.args[0]!)).toEqual([256]);
  });

  it('overrides D=128, K=32 apply to later dims and to shapes', () => {
    const { layer } = checkText(read('ttt_mlp.ttt'), { D: 128, K: 32 });
    expect([...layer.dims]).toEqual([
      ['D', 128],
      ['H', 512],
    ]);
    expect(layer.minibatch.size).toBe(32);
    expect(layer.states[0]!.shape).toEqual([128, 512]);
    expect(layer.views[0]!.shape).toEqual([128]);
  });

  it('constant learning rate and scale: none', () => {
    expect(checkText(read('silu_rmsnorm_mlp.ttt')).layer.update.lr).toMatchObject({ kind: 'constant', value: 0.05 });
    expect(checkText(read('delta_rule.ttt')).layer.update.scale).toMatchObject({ kind: 'none' });
  });
});

describe('expressions', () => {
  it('unary minus binds tightest, then @ * / (left-assoc), then + -', () => {
    expect(show(outputExpr('-q @ W * 2 + q / 2 - q'))).toBe('(((((-q) @ W) * 2) + (q / 2)) - q)');
    expect(show(outputExpr('q - q - q'))).toBe('((q - q) - q)');
    expect(show(outputExpr('q * (q + q)'))).toBe('(q * (q + q))');
    expect(show(outputExpr('2 * q @ W'))).toBe('((2 * q) @ W)');
    expect(show(outputExpr('--q'))).toBe('(-(-q))');
  });

  it('number literals', () => {
    expect(show(outputExpr('q * 0.5 + q * 1e-6 + q * 3 + q * 2.5E+2'))).toBe(
      '((((q * 0.5) + (q * 0.000001)) + (q * 3)) + (q * 250))',
    );
  });

  it('calls with positional then named arguments', () => {
    const e = outputExpr('layernorm(q @ W, eps: 1e-5)');
    expect(show(e)).toBe('layernorm((q @ W), eps: 0.00001)');
    expect(e.kind === 'call' && e.named[0]!.name).toBe('eps');
  });

  it('spans: 1-based line and column, offsets, exclusive end; parentheses included', () => {
    const text = layerWith('', '(q + q) * 2');
    const e = outputExpr('(q + q) * 2');
    const at = text.indexOf('(q + q) * 2');
    expect(e.span.file).toBe('test.ttt');
    expect(e.span.start).toEqual({ offset: at, line: 7, col: 20 });
    expect(e.span.end).toEqual({ offset: at + 11, line: 7, col: 31 });
    expect(e.kind === 'binary' && text.slice(e.left.span.start.offset, e.left.span.end.offset)).toBe('(q + q)');
    const call = outputExpr('sum(q) * q');
    expect(
      call.kind === 'binary' && call.left.kind === 'call' && [call.left.calleeSpan.start.col, call.left.span.end.col],
    ).toEqual([20, 26]);
  });
});

describe('declarations', () => {
  it('fn with a block body, lets separated by newlines or `;`, and an optional return type', () => {
    const text = layerWith('fn g(x: [D], s: f32) { let a = x * s; let b = a\n    let c = b; return c @ W }', 'g(q, 2)');
    const { layer } = checkText(text);
    const g = layer.fns.get('g')!;
    expect(g.name).toBe('g');
    expect(g.returnType).toBeUndefined();
    expect(g.params.map((p) => [p.name, p.type.dims.length])).toEqual([
      ['x', 1],
      ['s', 0],
    ]);
    expect(g.body.lets.map((l) => l.name)).toEqual(['a', 'b', 'c']);
    expect(show(g.body.result)).toBe('(c @ W)');
    expect(layer.shapes.get(g.body.result)).toEqual([4]);
  });

  it('`[]` and `f32` are scalars; members in any order; `;` between members', () => {
    const text = `# leading comment
layer T { update sgd(lr: 0.1, scale: 2); output(q: [D]) = q @ W * s
  loss(k: [D], v: [D]) { let e = k @ W - v; return 0.5 * dot(e, e) }   # trailing comment
  state s: []; state t: f32; state W: [D, D]; dim D = 8; minibatch K = D / 2 }`;
    const { layer } = checkText(text);
    expect(layer.states.map((s) => [s.name, s.shape])).toEqual([
      ['s', []],
      ['t', []],
      ['W', [8, 8]],
    ]);
    expect(layer.minibatch.size).toBe(4);
    expect(layer.update).toMatchObject({ lr: { kind: 'constant', value: 0.1 }, scale: { kind: 'constant', value: 2 } });
    expect(layer.loss.body.lets.map((l) => l.name)).toEqual(['e']);
  });

  it('dims: integer arithmetic over earlier dims; a dim in a value is a scalar', () => {
    const text = layerWith('dim H = (D + 2) * 3 / 2 - -1', 'q @ W * H');
    const { layer } = checkText(text);
    expect(layer.dims.get('H')).toBe(10);
    expect(layer.shapes.get(layer.output.body.result)).toEqual([4]);
  });

  it('matmul shapes', () => {
    const shape = (out: string, extra = '') => {
      const { layer } = checkText(layerWith(`param P: [D, K]\n  param M: [K, D]\n  ${extra}`, out));
      return layer.shapes.get(layer.output.body.result);
    };
    expect(shape('q @ P')).toEqual([2]);
    expect(shape('P @ M')).toEqual([4, 4]);
    expect(shape('M @ q')).toEqual([2]);
    expect(shape('q @ q')).toEqual([]);
    expect(shape('transpose(P)')).toEqual([2, 4]);
    expect(shape('mean(P) + sum(M)')).toEqual([]);
    expect(shape('l2norm(P) * 2')).toEqual([4, 2]);
  });

  it('names and spans of declarations', () => {
    const text = layerWith('param gamma: [D]');
    const gamma = member(text, 'param');
    expect(text.slice(gamma.nameSpan.start.offset, gamma.nameSpan.end.offset)).toBe('gamma');
    expect(text.slice(gamma.span.start.offset, gamma.span.end.offset)).toBe('param gamma: [D]');
    const update = member(text, 'update');
    expect(text.slice(update.ruleSpan.start.offset, update.ruleSpan.end.offset)).toBe('sgd');
    expect(text.slice(update.span.start.offset, update.span.end.offset)).toBe('update sgd(lr: token, scale: position)');
  });
});

it("the checker's built-ins are the ones the IR lowers", async () => {
  const ir = await import('../compiler/ir/builtins.ts');
  expect([...BUILTINS.keys()].sort()).toEqual(Object.keys(ir.BUILTINS).sort());
});
