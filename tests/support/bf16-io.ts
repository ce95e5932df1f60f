/** Checking a kernel's output stored as bf16 (`io: 'bf16'`) against the f64 reference. */
import { expect } from 'vitest';
import { roundBf16 } from '../../core/bf16.ts';
import type { InnerLoopInputs } from '../../runtime/inner-loop.ts';

/** The call's inputs with every view rounded to bf16: what the kernel reads once they are stored as bf16. */
export function roundedViews(inputs: InnerLoopInputs): InnerLoopInputs {
  const views = new Map([...inputs.views].map(([n, t]) => [n, { shape: t.shape, data: t.data.map(roundBf16) }]));
  return { ...inputs, views };
}

/**
 * A bf16 output, element by element, against the f64 reference on the rounded views. The kernel
 * computes y32 from the bf16 views as the f32-I/O kernel would from the same values (a bf16 widens
 * to f32 exactly), so y32 = ref + e with the kernel's own error e, which its tolerance bounds in
 * norm: ‖e‖₂ ≤ tol·‖ref‖₂, hence every |e_i| ≤ tol·‖ref‖₂. The store rounds y32 once to bf16 (8
 * significant bits), to nearest even: off by at most half an ulp, and an ulp of x in
 * [2^m, 2^(m+1)) is 2^(m-7), so the error is at most 2^-8·|y32_i| ≤ 2^-8·(|ref_i| + |e_i|) (the
 * unit roundoff 2^-8; 2^-9 only at the top of a binade). Together:
 *   |y_i − ref_i| ≤ 2^-8·|ref_i| + (1 + 2^-8)·tol·‖ref‖₂.
 * No slack beyond the kernel's tolerance: views read as anything but their bf16 values or an output
 * rounded twice or toward zero breaks it on some element of a random call.
 */
export function expectBf16OutputWithin(
  got: { shape: readonly number[]; data: ArrayLike<number> },
  want: { shape: readonly number[]; data: ArrayLike<number> },
  tol: number,
  label: string,
): void {
  expect(got.shape, label).toEqual(want.shape);
  let norm = 0;
  for (let i = 0; i < want.data.length; i++) norm += want.data[i] * want.data[i];
  norm = Math.sqrt(norm);
  let worst = -Infinity;
  for (let i = 0; i < want.data.length; i++) {
    const bound = 2 ** -8 * Math.abs(want.data[i]) + (1 + 2 ** -8) * tol * norm;
    worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]) - bound);
    // Stored as bf16: each value is one (NaN here would be an element the kernel never wrote).
    if (roundBf16(got.data[i]) !== got.data[i]) expect.fail(`${label}: output[${i}] = ${got.data[i]} is not a bf16`);
  }
  expect(worst, `${label}: the largest excess over the bound`).toBeLessThanOrEqual(0);
}
