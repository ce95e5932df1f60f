/**
 * The kernel IR on its own: the folding index arithmetic, the C-like printer on a hand-built
 * kernel in both dialects, and the mini-batch walk, whose one definition (core/walk.ts) gives the
 * chunks of the reference executor and runtime and, lowered, the kernels' loop.
 */
import { describe, expect, it } from 'vitest';
import { add, dim, div, min, mod, mul, sub } from '../compiler/kernel/affine.ts';
import { layOutOnChip } from '../compiler/kernel/banks.ts';
import {
  type Expr,
  type Kernel,
  type Stmt,
  assign,
  barrier,
  comment,
  compare,
  constant,
  float,
  floatOp,
  int,
  load,
  name,
  store,
  uniform,
  variable,
} from '../compiler/kernel/ir.ts';
import { shareValues } from '../compiler/kernel/share.ts';
import { guardSinglePassLoops } from '../compiler/kernel/single-pass.ts';
import { lowerWalk, type WalkInputs } from '../compiler/kernel/walk.ts';
import type { Port } from '../core/signature.ts';
import { chunks } from '../core/walk.ts';
import { Lines } from '../targets/clike/lines.ts';
import { type Memory, Printer } from '../targets/clike/print.ts';
import { cuda } from '../targets/cuda/dialect.ts';
import { wgsl } from '../targets/wgsl/dialect.ts';

const e = name('e');
const p = name('p');

/** An index expression's value, its names bound by `env`. */
const evalIndex = (x: Expr, env: Record<string, number>): number => {
  if (x.kind === 'int' || x.kind === 'dim') return x.value;
  if (x.kind === 'name') return env[x.name];
  if (x.kind === 'min') return Math.min(evalIndex(x.a, env), evalIndex(x.b, env));
  if (x.kind !== 'index') throw new Error(x.kind);
  const [a, b] = [evalIndex(x.a, env), evalIndex(x.b, env)];
  return { '+': a + b, '-': a - b, '*': a * b, '/': Math.floor(a / b), '%': a % b, '^': a ^ b }[x.op];
};

describe('index arithmetic folds as it builds', () => {
  const print = (x: Expr) =>
    new Printer(cuda, { uniform: (n) => n, port: (_, index) => ({ array: 'a', index }) }).expr(x);

  it('folds constants and identities', () => {
    expect(print(add(int(2), int(3)))).toBe('5');
    expect(print(add(e, int(0)))).toBe('e');
    expect(print(mul(e, 1))).toBe('e');
    expect(print(mul(e, 0))).toBe('0');
    expect(print(mul(int(4), e))).toBe('e * 4');
    expect(print(div(int(17), 4))).toBe('4');
    expect(print(mod(int(17), 4))).toBe('1');
    expect(print(mod(e, 1))).toBe('0');
    expect(print(sub(int(9), int(4)))).toBe('5');
    expect(print(sub(e, int(0)))).toBe('e');
  });

  it('merges scalings, divisions and adjacent constants', () => {
    expect(print(mul(mul(div(e, 32), 2), 64))).toBe('(e / 32) * 128');
    expect(print(div(mul(e, 8), 4))).toBe('e * 2');
    expect(print(div(div(e, 4), 2))).toBe('e / 8');
    expect(print(mod(mul(e, 8), 4))).toBe('0');
    expect(print(add(add(int(2048), e), add(int(1), int(2))))).toBe('2048 + e + 3');
    expect(print(add(add(int(2048), mul(p, 64)), e))).toBe('2048 + p * 64 + e');
  });

  it('keeps the operand of a min that can be smaller, drops the one that cannot', () => {
    const K = dim('dim_K', 16);
    const room = sub(K, name('position'));
    expect(print(min(dim('chunk_rows', 16), room))).toBe('dim_K - position');
    expect(print(min(dim('chunk_rows', 1), room))).toBe('min(chunk_rows, dim_K - position)');
    expect(print(min(room, uniform('T')))).toBe('min(dim_K - position, T)');
    expect(print(min(int(63), mod(e, 64)))).toBe('e % 64');
  });

  it('parenthesises compound operands of products and of subtraction', () => {
    expect(print(mul(add(mul(div(e, 32), 2), int(1)), 64))).toBe('((e / 32) * 2 + 1) * 64');
    expect(print(sub(name('a'), add(name('b'), name('c'))))).toBe('a - (b + c)');
  });

  it('is evaluated as the integers it stands for', () => {
    for (let v = 0; v < 300; v += 7) {
      const built = add(mul(add(mul(div(e, 32), 2), int(1)), 64), mod(div(mul(e, 6), 3), 5));
      const expected = ((Math.floor(v / 32) * 2 + 1) * 64 + (((v * 6) / 3) % 5)) | 0;
      expect(evalIndex(built, { e: v })).toBe(expected);
    }
  });
});

describe('the C-like printer', () => {
  const port: Port = { role: 'view', name: 'k', io: 'in', lead: ['B', 'H', 'T'], shape: [4] };
  const out: Port = { role: 'output', name: 'output', io: 'out', lead: ['B', 'H', 'T'], shape: [4] };
  const K = dim('dim_K', 8);
  const body: Stmt[] = [
    comment('Stage a view; a spec line */ cannot end this comment\r#include "x"'),
    {
      kind: 'for',
      counter: 'e',
      from: name('tid'),
      to: K,
      step: int(64),
      body: [
        variable('x', 'float', float(0)),
        {
          kind: 'if',
          condition: compare('<', div(e, 4), name('count')),
          body: [assign('x', load({ kind: 'port', port }, e))],
        },
        store({ kind: 'workgroup' }, add(int(16), e), name('x')),
      ],
    },
    barrier(true),
    constant(
      'y',
      'float',
      floatOp(
        '-',
        floatOp('*', load({ kind: 'workgroup' }, e), float(2)),
        floatOp('+', float(1), { kind: 'unary', fn: 'exp', x: float(-0.5) }),
      ),
    ),
    store({ kind: 'port', port: out }, add(mul(uniform('T'), 4), e), { kind: 'operand', x: name('y') }),
  ];
  const kernel: Kernel = {
    invocations: 64,
    dims: [{ name: 'dim_K', value: 8, note: 'Tokens per mini-batch.' }],
    ports: [port, out],
    workgroupFloats: 32,
    scratchFloats: 0,
    body,
    onChip: layOutOnChip(body),
  };
  const memory = (uniformOf: (n: string) => string): Memory => ({
    uniform: uniformOf,
    port: (q, index) => ({
      array: q.role === 'view' ? 'tokens' : 'out',
      index: q.role === 'view' ? add(mul(uniform('BHT'), 4), index) : index,
    }),
  });
  const printed = (d: typeof wgsl, m: Memory) => {
    const L = new Lines();
    new Printer(d, m).kernel(kernel, L);
    return L.toString();
  };

  it('prints WGSL', () => {
    expect(
      printed(
        wgsl,
        memory((n) => `u.${n}`),
      ),
    ).toBe(
      [
        '// Tokens per mini-batch.',
        'let dim_K: u32 = 8;',
        '// Stage a view; a spec line * / cannot end this comment\\u{d}#include "x"',
        'for (var e: u32 = tid; e < dim_K; e = e + 64) {',
        '  var x: f32 = 0.0;',
        '  if (e / 4 < count) {',
        '    x = tokens[u.BHT * 4 + e];',
        '  }',
        '  smem[16 + e] = x;',
        '}',
        'storageBarrier();',
        'workgroupBarrier();',
        'let y: f32 = smem[e] * 2.0 - (1.0 + exp((-0.5)));',
        'out[u.T * 4 + e] = y;',
        '',
      ].join('\n'),
    );
  });

  it('prints CUDA', () => {
    expect(
      printed(
        cuda,
        memory((n) => n),
      ),
    ).toBe(
      [
        '// Tokens per mini-batch.',
        'const unsigned dim_K = 8;',
        '// Stage a view; a spec line * / cannot end this comment\\u{d}#include "x"',
        'for (unsigned e = tid; e < dim_K; e += 64) {',
        '  float x = 0.0f;',
        '  if (e / 4 < count) {',
        '    x = tokens[BHT * 4 + e];',
        '  }',
        '  smem[16 + e] = x;',
        '}',
        '__syncthreads();',
        'const float y = smem[e] * 2.0f - (1.0f + expf((-0.5f)));',
        'out[T * 4 + e] = y;',
        '',
      ].join('\n'),
    );
  });

  it('prints lane exchanges as warp shuffles (CUDA) and subgroup shuffles (WGSL)', () => {
    const sum = floatOp('+', name('acc'), { kind: 'shuffle-xor', x: name('acc'), mask: 16, width: 32 });
    const m = memory((n) => n);
    expect(new Printer(cuda, m).expr(sum)).toBe('(acc + __shfl_xor_sync(0xffffffffu, acc, 16, 32))');
    expect(new Printer(wgsl, m).expr(sum)).toBe('(acc + subgroupShuffleXor(acc, 16u))');
  });

  it('keeps a rolled loop rolled where the language unrolls loops (CUDA), and prints it plainly elsewhere', () => {
    const loop: Stmt = {
      kind: 'for',
      counter: 'p',
      from: int(0),
      to: K,
      step: int(1),
      body: [assign('acc', floatOp('+', name('acc'), load({ kind: 'port', port }, name('p'))))],
      rolled: true,
    };
    const print = (d: typeof wgsl) => {
      const L = new Lines();
      new Printer(
        d,
        memory((n) => n),
      ).kernel({ ...kernel, body: [loop], onChip: layOutOnChip([loop]) }, L);
      return L.toString();
    };
    expect(print(cuda)).toContain('#pragma unroll 1\nfor (unsigned p = 0; p < dim_K; p += 1) {');
    expect(print(wgsl)).not.toContain('pragma');
  });

  it('names a value a group of statements reads twice, once', () => {
    const v = floatOp('*', load({ kind: 'workgroup' }, e), float(3));
    const group = shareValues([store({ kind: 'workgroup' }, e, floatOp('+', v, v))], () => 'v0');
    const L = new Lines();
    new Printer(
      cuda,
      memory((n) => n),
    ).statements(group, L);
    expect(L.toString()).toBe(['const float v0 = smem[e] * 3.0f;', 'smem[e] = v0 + v0;', ''].join('\n'));
  });
});

/** The chunks of the old hand-written recurrence, from the semantics: at most `rows`, never across K, never past T. */
function chunksByHand(start: number, T: number, K: number, rows: number) {
  const out = [];
  let position = start;
  for (let token = 0; token < T;) {
    const count = Math.min(rows, K - position, T - token);
    out.push({ token, position, count, ends: position + count === K });
    token += count;
    position = (position + count) % K;
  }
  return out;
}

/** Runs the lowered walk, recording the walk's values wherever the chunk body stands. */
function runLoweredWalk(start: number, T: number, K: number, rows: number) {
  const inputs: WalkInputs = {
    start: uniform('start'),
    T: uniform('T'),
    K: dim('dim_K', K),
    rows: dim('chunk_rows', rows),
  };
  const marker = comment('chunk');
  const env = new Map<string, number>([
    ['start', start],
    ['T', T],
  ]);
  const value = (x: Expr): number => {
    switch (x.kind) {
      case 'int':
      case 'dim':
        return x.value;
      case 'name':
      case 'uniform':
        if (!env.has(x.name)) throw new Error(`${x.name} read before it is set`);
        return env.get(x.name)!;
      case 'index': {
        const [a, b] = [value(x.a), value(x.b)];
        return { '+': a + b, '-': a - b, '*': a * b, '/': Math.floor(a / b), '%': a % b, '^': a ^ b }[x.op];
      }
      case 'min':
        return Math.min(value(x.a), value(x.b));
      case 'compare': {
        const [a, b] = [value(x.a), value(x.b)];
        return { '<': a < b, '<=': a <= b, '==': a === b, '!=': a !== b }[x.op] ? 1 : 0;
      }
      default:
        throw new Error(`the walk has no ${x.kind}`);
    }
  };
  const seen: { token: number; position: number; count: number; ends: boolean }[] = [];
  const run = (body: readonly Stmt[]) => {
    for (const s of body) {
      if (s === marker)
        seen.push({
          token: env.get('token')!,
          position: env.get('position')!,
          count: env.get('count')!,
          ends: env.get('ends') === 1,
        });
      else if (s.kind === 'let' || s.kind === 'assign') env.set(s.name, value(s.value));
      else if (s.kind === 'while') while (value(s.condition)) run(s.body);
      else if (s.kind !== 'blank') throw new Error(`the walk has no ${s.kind}`);
      if (seen.length > 10_000) throw new Error('the walk does not end');
    }
  };
  run(lowerWalk(inputs, [marker]));
  return seen;
}

describe('the mini-batch walk is defined once', () => {
  const cases: [number, number, number, number][] = [];
  for (const K of [1, 2, 3, 5, 16])
    for (const rows of [...new Set([1, 2, K])].filter((r) => r <= K))
      for (let start = 0; start < K; start++) for (const T of [1, 2, 3, 7, 16, 33]) cases.push([start, T, K, rows]);

  it('chunks() evaluates the walk as the recurrence of the semantics', () => {
    for (const [start, T, K, rows] of cases) expect(chunks(start, T, K, rows)).toEqual(chunksByHand(start, T, K, rows));
  });

  it("the kernel's lowered walk visits the same chunks", () => {
    for (const [start, T, K, rows] of cases)
      expect(runLoweredWalk(start, T, K, rows)).toEqual(chunks(start, T, K, rows));
  });
});

describe('loops that no invocation runs twice are guards', () => {
  const [warp, lane, tid] = [name('warp'), name('lane'), name('tid')];
  const values = new Map([
    ['tid', 256],
    ['lane', 32],
  ]);
  const body: Stmt[] = [store({ kind: 'workgroup' }, e, float(1))];
  const loop = (from: Expr, to: Expr, step: number): Stmt => ({
    kind: 'for',
    counter: 'e',
    from,
    to,
    step: int(step),
    body,
  });
  /** The elements each invocation stores to, running the statements as the kernel would. */
  const stored = (stmts: readonly Stmt[], env: Record<string, number>): number[] => {
    const out: number[] = [];
    for (const s of stmts) {
      if (s.kind === 'store') out.push(evalIndex(s.index, env));
      if (s.kind === 'let') env = { ...env, [s.name]: evalIndex(s.value, env) };
      if (s.kind === 'block') out.push(...stored(s.body, env));
      if (s.kind === 'if' && s.condition.kind === 'compare') {
        if (evalIndex(s.condition.a, env) < evalIndex(s.condition.b, env)) out.push(...stored(s.body, env));
      }
      if (s.kind === 'for')
        for (let v = evalIndex(s.from, env); v < evalIndex(s.to, env); v += evalIndex(s.step, env))
          out.push(...stored(s.body, { ...env, [s.counter]: v }));
    }
    return out;
  };
  const sameStores = (before: Stmt[], after: Stmt[]) => {
    for (let t = 0; t < 256; t++) {
      const env = { tid: t, warp: t >> 5, lane: t & 31, count: 11 };
      expect(stored(after, env), `tid ${t}`).toEqual(stored(before, env));
    }
  };

  it('guards a warp span of fewer elements than lanes, and gives its counter the first element', () => {
    const before = [loop(add(mul(warp, 2), lane), add(mul(warp, 2), int(2)), 32)];
    const after = guardSinglePassLoops(before, values);
    expect(after[0]).toMatchObject({ kind: 'if', condition: compare('<', lane, int(2)) });
    expect((after[0] as Stmt & { kind: 'if' }).body[0]).toEqual(constant('e', 'index', add(mul(warp, 2), lane)));
    sameStores(before, after);
  });

  it('names the element a one-lane guard takes without the lane, which is 0 there', () => {
    const before = [loop(add(warp, lane), add(warp, int(1)), 32)];
    const after = guardSinglePassLoops(before, values);
    expect(after[0]).toMatchObject({ kind: 'if', condition: compare('<', lane, int(1)) });
    expect((after[0] as Stmt & { kind: 'if' }).body[0]).toEqual(constant('e', 'index', warp));
    sameStores(before, after);
  });

  it('opens a bare scope where the guard always holds, and keeps a min bound whole', () => {
    const whole = [loop(add(mul(warp, 32), lane), add(mul(warp, 32), int(32)), 32)];
    expect(guardSinglePassLoops(whole, values)[0].kind).toBe('block');
    sameStores(whole, guardSinglePassLoops(whole, values));
    const partial = [loop(add(mul(warp, 32), lane), min(add(mul(warp, 32), int(32)), mul(name('count'), 4)), 32)];
    const guarded = guardSinglePassLoops(partial, values);
    expect(guarded[0]).toMatchObject({ kind: 'if', condition: { kind: 'compare', b: { kind: 'min' } } });
    sameStores(partial, guarded);
    const invocations = [loop(tid, int(64), 256)];
    expect(guardSinglePassLoops(invocations, values)[0]).toMatchObject({ condition: compare('<', tid, int(64)) });
    sameStores(invocations, guardSinglePassLoops(invocations, values));
  });

  it('leaves loops that may run twice, and loops from a constant, as loops', () => {
    for (const l of [
      loop(add(mul(warp, 64), lane), add(mul(warp, 64), int(64)), 32),
      loop(tid, int(300), 256),
      loop(lane, add(warp, int(2)), 32),
      loop(int(0), int(1), 1),
    ]) {
      expect(guardSinglePassLoops([l], values)).toEqual([l]);
    }
  });

  it('declares no counter the body does not read', () => {
    const quiet = [{ ...loop(tid, int(16), 256), body: [barrier(false)] } as Stmt];
    expect(guardSinglePassLoops(quiet, values)[0]).toEqual({
      kind: 'if',
      condition: compare('<', tid, int(16)),
      body: [barrier(false)],
    });
  });
});
