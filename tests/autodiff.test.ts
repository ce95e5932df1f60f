import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff/vjp.ts';
import { execute } from '../compiler/ir/execute.ts';
import { BUILTINS } from '../compiler/ir/builtins.ts';
import { Builder, type Shape, size } from '../compiler/ir/ir.ts';
import { RowOps } from '../compiler/ir/rows.ts';
import type { Tensor } from '../core/tensor.ts';
import { int, normals, pick, rng, uniforms } from './support/random.ts';

/**
 * Every op's VJP rule against central finite differences in f64. Each case builds
 * f(x, y) = Σ w ⊙ op(x, y) with a random cotangent w, on random shapes.
 */
type Case = {
  name: string;
  args: (r: () => number) => Shape[];
  build: (b: Builder, ids: number[], shapes: Shape[], r: () => number) => number;
  positive?: boolean;
};

const randShape = (r: () => number, rank = int(r, 0, 3)): number[] => Array.from({ length: rank }, () => int(r, 1, 4));

const unary = (fn: 'neg' | 'exp' | 'log' | 'tanh' | 'sqrt' | 'recip' | 'erf', positive = false): Case => ({
  name: fn,
  args: (r) => [randShape(r)],
  build: (b, [x]) => b.unary(fn, x),
  positive,
});
const binary = (fn: 'add' | 'sub' | 'mul' | 'div'): Case => ({
  name: fn,
  args: (r) => {
    const s = randShape(r);
    return [s, s];
  },
  build: (b, [x, y]) => b.binary(fn, x, y),
  positive: fn === 'div',
});

const cases: Case[] = [
  unary('neg'),
  unary('exp'),
  unary('log', true),
  unary('tanh'),
  unary('sqrt', true),
  unary('recip', true),
  unary('erf'),
  binary('add'),
  binary('sub'),
  binary('mul'),
  binary('div'),
  {
    name: 'matmul',
    args: (r) => {
      const batch = randShape(r, int(r, 0, 2));
      const [m, k, n] = [int(r, 1, 5), int(r, 1, 5), int(r, 1, 5)];
      return [
        [...batch, m, k],
        [...batch, k, n],
      ];
    },
    build: (b, [x, y]) => b.matmul(x, y),
  },
  {
    name: 'sum',
    args: (r) => [randShape(r, int(r, 1, 3))],
    build: (b, [x], [s], r) =>
      b.sum(
        x,
        s.map((_, i) => i).filter(() => r() < 0.6),
      ),
  },
  {
    name: 'expand',
    args: (r) => [randShape(r, int(r, 0, 2)).map((d) => (r() < 0.5 ? 1 : d))],
    build: (b, [x], [s], r) =>
      b.expand(x, [...randShape(r, int(r, 0, 2)), ...s.map((d) => (d === 1 ? int(r, 1, 3) : d))]),
  },
  {
    name: 'reshape',
    args: (r) => [randShape(r, int(r, 1, 3))],
    build: (b, [x], [s]) => b.reshape(x, [size(s)]),
  },
  {
    name: 'transpose',
    args: (r) => [randShape(r, int(r, 2, 4))],
    build: (b, [x], [s], r) => {
      const perm = s.map((_, i) => i);
      for (let i = perm.length - 1; i > 0; i--) {
        const j = int(r, 0, i);
        [perm[i], perm[j]] = [perm[j], perm[i]];
      }
      return b.transpose(x, perm);
    },
  },
  ...['abs', 'min', 'max', 'clamp'].map((name): Case => ({
    name,
    args: (r) => {
      const s = randShape(r, int(r, 1, 3));
      // Arguments broadcast together: some take the trailing axes only.
      return Array.from({ length: BUILTINS_ARITY[name] }, () => s.slice(int(r, 0, s.length)));
    },
    build: (b, ids) => language(b, name, ids),
  })),
  ...[3, -2, 0.5, 1.5, -0.75].map((c): Case => ({
    name: `pow(x, ${c})`,
    args: (r) => [randShape(r)],
    build: (b, [x]) => language(b, 'pow', [x, b.const(c)]),
    positive: !Number.isInteger(c),
  })),
  {
    name: 'concat',
    args: (r) => {
      const lead = randShape(r, int(r, 0, 1));
      return [
        [...lead, int(r, 1, 4)],
        [...lead, int(r, 1, 4)],
      ];
    },
    build: (b, ids) => language(b, 'concat', ids),
  },
  {
    name: 'outer',
    args: (r) => [[int(r, 1, 5)], [int(r, 1, 5)]],
    build: (b, ids) => language(b, 'outer', ids),
  },
  {
    name: 'composite (second derivative of tanh·x)',
    args: (r) => [randShape(r, 1)],
    build: (b, [x]) => {
      const y = b.mul(b.unary('tanh', x), x);
      const [dy] = grad(b, b.sum(y, [0]), [x]);
      return dy;
    },
  },
];

const BUILTINS_ARITY: Record<string, number> = { abs: 1, min: 2, max: 2, clamp: 3 };

/** A language built-in applied to row-free values, as the lowering applies it. */
function language(b: Builder, name: string, ids: number[]): number {
  return BUILTINS[name](
    new RowOps(b, 1),
    ids.map((id) => ({ id, rows: false })),
    0,
  ).id;
}

function checkCase(c: Case, seed: number): void {
  const r = rng(seed);
  const shapes = c.args(r);
  const b = new Builder();
  const ids = shapes.map((s, i) => b.input(`x${i}`, s));
  const y = c.build(b, ids, shapes, r);
  const w = b.input('w', b.shape(y));
  const f = b.sum(
    b.mul(y, w),
    b.shape(y).map((_, i) => i),
  );
  const grads = grad(b, f, ids);
  const program = b.build([{ name: 'f', node: f }, ...grads.map((g, i) => ({ name: `g${i}`, node: g }))]);
  const inputs = new Map<string, Tensor>(
    shapes.map((s, i) => [
      `x${i}`,
      { shape: s, data: c.positive ? uniforms(r, size(s), 0.5, 2) : normals(r, size(s)) },
    ]),
  );
  inputs.set('w', { shape: b.shape(y), data: normals(r, size(b.shape(y))) });
  const out = execute(program, inputs);
  const h = 1e-5;
  shapes.forEach((s, i) => {
    const analytic = out.get(`g${i}`)!.data;
    const x = inputs.get(`x${i}`)!.data;
    for (let j = 0; j < size(s); j++) {
      const keep = x[j];
      x[j] = keep + h;
      const up = execute(program, inputs).get('f')!.data[0];
      x[j] = keep - h;
      const down = execute(program, inputs).get('f')!.data[0];
      x[j] = keep;
      const numeric = (up - down) / (2 * h);
      expect(Math.abs(analytic[j] - numeric), `${c.name} seed ${seed} arg ${i} elem ${j}`).toBeLessThan(
        1e-6 * Math.max(1, Math.abs(numeric)),
      );
    }
  });
}

describe('autodiff: every VJP rule against central finite differences (f64)', () => {
  for (const c of cases) {
    it(c.name, () => {
      for (let seed = 1; seed <= 12; seed++) checkCase(c, seed * 7919 + c.name.length);
    });
  }

  it('random compositions of ops (chains of up to 6)', () => {
    const safe: ((b: Builder, x: number, y: number) => number)[] = [
      (b, x) => b.unary('tanh', x),
      (b, x) => b.unary('erf', x),
      (b, x) => b.unary('exp', b.unary('tanh', x)),
      (b, x, y) => b.mul(x, y),
      (b, x, y) => b.add(x, b.unary('neg', y)),
      (b, x, y) => b.div(x, b.add(b.const(2, b.shape(y)), b.unary('tanh', y))),
      (b, x) => b.unary('sqrt', b.add(b.mul(x, x), b.const(1, b.shape(x)))),
    ];
    for (let trial = 0; trial < 20; trial++) {
      const chain = rng(trial + 1000);
      const steps = Array.from({ length: int(chain, 2, 6) }, () => pick(chain, safe));
      checkCase(
        {
          name: `chain ${trial}`,
          args: (r) => {
            const s = randShape(r, int(r, 1, 2));
            return [s, s];
          },
          build: (b, [x, y]) => steps.reduce((acc, f) => f(b, acc, y), x),
        },
        trial,
      );
    }
  });
});

describe('the small built-ins compute what they say (f64)', () => {
  const value = (name: string, args: Float64Array[], extra: number[] = []): Float64Array => {
    const b = new Builder();
    const ids = args.map((a, i) => b.input(`x${i}`, [a.length]));
    const y = language(b, name, [...ids, ...extra.map((c) => b.const(c))]);
    const inputs = new Map(args.map((a, i) => [`x${i}`, { shape: [a.length], data: a }]));
    return execute(b.build([{ name: 'y', node: y }]), inputs).get('y')!.data;
  };
  const r = rng(5);
  const x = normals(r, 9);
  const y = normals(r, 9);
  const z = normals(r, 9).map((v) => v + 1);
  const near = (got: Float64Array, want: number[]) =>
    want.forEach((w, i) => expect(Math.abs(got[i] - w)).toBeLessThanOrEqual(1e-13 * Math.max(1, Math.abs(w))));

  it('abs, min, max, clamp', () => {
    near(value('abs', [x]), [...x].map(Math.abs));
    near(
      value('min', [x, y]),
      [...x].map((v, i) => Math.min(v, y[i])),
    );
    near(
      value('max', [x, y]),
      [...x].map((v, i) => Math.max(v, y[i])),
    );
    near(
      value('clamp', [x, y, z]),
      [...x].map((v, i) => Math.min(Math.max(v, y[i]), z[i])),
    );
  });

  it('pow with whole, negative and fractional exponents', () => {
    for (const c of [0, 1, 2, 5, -3])
      near(
        value('pow', [x], [c]),
        [...x].map((v) => v ** c),
      );
    const positive = x.map((v) => Math.abs(v) + 0.1);
    for (const c of [0.5, -0.5, 1.25, 100.5])
      near(
        value('pow', [positive], [c]),
        [...positive].map((v) => v ** c),
      );
  });

  it('concat of vectors and of matrices (along the last axis)', () => {
    near(value('concat', [x.subarray(0, 3), y.subarray(0, 5)]), [...x.subarray(0, 3), ...y.subarray(0, 5)]);
    const b = new Builder();
    const p = b.input('p', [2, 3]);
    const q = b.input('q', [2, 1]);
    const out = execute(b.build([{ name: 'y', node: language(b, 'concat', [p, q]) }]), {
      p: { shape: [2, 3], data: Float64Array.of(1, 2, 3, 4, 5, 6) },
      q: { shape: [2, 1], data: Float64Array.of(7, 8) },
    });
    near(out.get('y')!.data, [1, 2, 3, 7, 4, 5, 6, 8]);
  });

  it('outer', () => {
    const got = value('outer', [x.subarray(0, 3), y.subarray(0, 4)]);
    near(
      got,
      Array.from({ length: 12 }, (_, k) => x[Math.floor(k / 4)] * y[k % 4]),
    );
  });
});
