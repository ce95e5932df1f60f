/**
 * How many lanes sum each element of a sum stage, where lanes can exchange values (a CUDA warp's):
 * a long reduction over fewer elements than there are invocations is shared by a group of lanes,
 * each summing every `lanes`-th term before a butterfly of exchanges combines them, where
 * one-element-per-invocation would leave invocations idle; a warp that owns rows of one element
 * each sums each row with its lanes. The kernel's lowering (compiler/kernel/sums.ts) and the
 * block-size model (workgroup-size.ts) both follow it.
 */
import type { WarpRows } from './kernel.ts';

export function sumLanes(
  terms: number,
  elements: number,
  invocations: number,
  lanes: number | undefined,
  owners?: WarpRows,
): number {
  if (owners) return owners.rowElements > 1 || terms < owners.lanes ? 1 : owners.lanes;
  if (!lanes || terms < lanes || elements >= invocations || invocations % lanes !== 0) return 1;
  return lanes;
}
