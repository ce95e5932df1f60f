/**
 * Sizes the kernels can index: generated WGSL and CUDA compute offsets in 32-bit integers, so
 * every dim and every tensor a kernel indexes (per sequence and head; a view's mini-batch of rows)
 * must stay below 2^31 elements.
 */
import { diag } from '../diagnostics/codes.ts';
import type { Span } from '../diagnostics/diagnostic.ts';
import type { DimOverrides, Shape } from './checked.ts';
import type { LayerScope, Report } from './scope.ts';

export const MAX_INDEX = 2 ** 31 - 1;

/** Reports dims and the minibatch of 2^31 or more, at the value (or the name, if overridden). */
export function checkSizeLimits(
  scope: LayerScope,
  values: ReadonlyMap<string, number>,
  overrides: DimOverrides,
  report: Report,
): void {
  for (const decl of scope.sizes) {
    const v = values.get(decl.name);
    if (v === undefined || v <= MAX_INDEX) continue;
    const span = overrides.has(decl.name) ? decl.nameSpan : decl.value.span;
    report(diag('TTT320', span, `${decl.kind} '${decl.name}' is ${v}, beyond the 32-bit index range (2^31 - 1)`));
  }
}

/** Reports a tensor of `rows` × `shape` elements when it does not fit; rows is K for a view. */
export function checkTensorLimit(what: string, shape: Shape, rows: number, span: Span, report: Report): void {
  if (shape.some((d) => d > MAX_INDEX)) return; // the dim itself is reported
  const elements = shape.reduce((p, d) => p * d, rows);
  if (elements <= MAX_INDEX) return;
  report(diag('TTT320', span, `${what} has ${elements} elements, beyond the 32-bit index range (2^31 - 1)`));
}

/**
 * Reports tensors packed into one buffer per (sequence, head), each state with its accumulator
 * (`copies` = 2), whose offsets together pass 32 bits although each tensor fits.
 */
export function checkPackedLimit(
  what: string,
  shapes: readonly (Shape | undefined)[],
  copies: number,
  span: Span,
  report: Report,
): void {
  const sizes = shapes.map((s) => (s ?? []).reduce((p, d) => p * d, 1));
  if (sizes.some((n) => n > MAX_INDEX)) return; // that tensor is reported itself
  const total = copies * sizes.reduce((p, n) => p + n, 0);
  if (total <= MAX_INDEX) return;
  report(diag('TTT320', span, `${what} take ${total} elements together, beyond the 32-bit index range (2^31 - 1)`));
}
