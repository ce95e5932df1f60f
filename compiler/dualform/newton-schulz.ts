/**
 * Orthogonalisation by Newton–Schulz iterations, as Muon applies it to a matrix update
 * (K. Jordan et al., "Muon: an optimizer for hidden layers", 2024; LaCT, Zhang et al. 2025,
 * `zeropower_via_newtonschulz5`): X ← U / (‖U‖_F + 1e-7), transposed so that it is wide; then
 * `steps` times X ← a·X + (b·A + c·A²)·X with A = X·Xᵀ, and the quintic's coefficients
 * (a, b, c) = (3.4445, −4.7750, 2.0315) of both publications. It maps U to about U·(UᵀU)^(−1/2)
 * (singular values pushed towards 1; these coefficients leave them in about [0.7, 1.2]).
 */
import type { Builder } from '../ir/ir.ts';

export const NEWTON_SCHULZ_COEFFICIENTS = [3.4445, -4.775, 2.0315] as const;
export const NEWTON_SCHULZ_EPS = 1e-7;

export function newtonSchulz(b: Builder, update: number, steps: number): number {
  const [rows, cols] = b.shape(update);
  const tall = rows > cols;
  const norm = b.unary('sqrt', b.sum(b.mul(update, update), [0, 1]));
  const inverse = b.unary('recip', b.add(norm, b.const(NEWTON_SCHULZ_EPS)));
  let x = b.mul(update, b.expand(inverse, [rows, cols]));
  if (tall) x = b.mT(x);
  const [ca, cb, cc] = NEWTON_SCHULZ_COEFFICIENTS;
  for (let i = 0; i < steps; i++) {
    const a = b.matmul(x, b.mT(x));
    const poly = b.add(b.scale(a, cb), b.scale(b.matmul(a, a), cc));
    x = b.add(b.scale(x, ca), b.matmul(poly, x));
  }
  return tall ? b.mT(x) : x;
}
