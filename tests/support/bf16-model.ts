/**
 * Comparing bf16-operand kernels with the reference run at precision 'bf16' (every value rounded to
 * f32, each product's operands to bf16: compiler/ir/execute.ts), as tests/cuda-mma-kernels.test.ts
 * derives the bound: `worst` measures a distance, `nudged` gives the inputs whose model run
 * measures e_flip.
 */
import { expect } from 'vitest';
import { relativeError, type Tensor } from '../../core/tensor.ts';

/** The largest relative error over every tensor of `want`, none of them NaN. */
export function worst(got: Map<string, Tensor>, want: Map<string, Tensor>): number {
  let e = 0;
  for (const [name, w] of want) {
    const g = got.get(name);
    expect(g?.shape, name).toEqual(w.shape);
    const x = relativeError(g!.data, w.data);
    expect(Number.isNaN(x), `${name} has NaN`).toBe(false);
    e = Math.max(e, x);
  }
  return e;
}

/** Every value but those `keep` names moved by one f32 ulp (2^-23), alternately up and down. */
export const nudged = (m: Map<string, Tensor>, keep: (name: string) => boolean = () => false) =>
  new Map(
    [...m].map(([n, t]): [string, Tensor] => [
      n,
      keep(n) ? t : { shape: t.shape, data: t.data.map((x, i) => x * (1 + (i % 2 ? 1 : -1) * 2 ** -23)) },
    ]),
  );
