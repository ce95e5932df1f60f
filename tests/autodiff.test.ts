import { describe, expect, it } from 'vitest';
import { grad } from '../compiler/autodiff/vjp.ts';
import { execute } from '../compiler/ir/execute.ts';
import { Builder, type Shape, size } from '../compiler/ir/ir.ts';
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
