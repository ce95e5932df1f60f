/**
 * The key side of a mini-batch program: every row's loss at the chunk's starting state, weighted
 * per row, and its gradient: per-row gradients for states that rows copy, and the cotangents δ of
 * each dual-form matmul site `x @ S` for the others (the state's gradient is then Σ_j x_jᵀ δ_j).
 */
import type { CheckedLayer } from '../check/checked.ts';
import { grad } from '../autodiff/vjp.ts';
import type { Builder } from '../ir/ir.ts';
import { Lowering } from '../ir/lower.ts';
import type { Val } from '../ir/rows.ts';

/** A dual-form matmul site on the key side: row activations `x` [R, m], `z` = x @ S, and δ = ∂loss/∂z [R, n]. */
export interface KeySite {
  x: number;
  z: number;
  delta: number;
}

export interface KeySide {
  /** Dual-form matmul sites of each state that rows do not copy. */
  sites: Map<string, KeySite[]>;
  /** [R, ...shape] gradients of each state that rows copy. */
  rowGrads: Map<string, number>;
  /** The weighted gradient summed over rows, for states that rows do not copy. */
  summed: Map<string, number>;
}

/**
 * `weight` [R] multiplies each row's loss (the rate and the mask, or the mask alone). `perRow`
 * says which states rows copy; `state` is each state's value at the chunk's start.
 */
export function keySide(
  layer: CheckedLayer,
  b: Builder,
  R: number,
  state: ReadonlyMap<string, number>,
  perRow: (s: string) => boolean,
  weight: number,
): KeySide {
  const rowCopies = new Map<string, number>();
  const found = new Map<string, { x: number; z: number }[]>(layer.states.map((s) => [s.name, []]));
  const lowering: Lowering = new Lowering(layer, b, R, {
    value: (s) => {
      if (!perRow(s)) return { id: state.get(s)!, rows: false };
      const shape = layer.states.find((t) => t.name === s)!.shape;
      const copy = b.expand(state.get(s)!, [R, ...shape]);
      rowCopies.set(s, copy);
      return { id: copy, rows: true };
    },
    matmul: (s, x, sv): Val | undefined => {
      if (perRow(s)) return undefined;
      const xr = lowering.ops.lift(x);
      const z = b.matmul(xr, sv.id);
      if (!found.get(s)!.some((k) => k.z === z)) found.get(s)!.push({ x: xr, z });
      return { id: z, rows: true };
    },
  });
  const loss = lowering.ops.lift(lowering.viewFn(layer.loss));
  const weighted = b.sum(b.mul(loss, weight), [0]);
  const dualStates = layer.states.filter((s) => !perRow(s.name)).map((s) => s.name);
  const rowStates = [...rowCopies.keys()];
  const allSites = dualStates.flatMap((s) => found.get(s)!);
  b.origin = layer.loss.span;
  const adjoints = grad(b, weighted, [
    ...dualStates.map((s) => state.get(s)!),
    ...rowStates.map((s) => rowCopies.get(s)!),
    ...allSites.map((k) => k.z),
  ]);
  const summed = new Map(dualStates.map((s, i) => [s, adjoints[i]]));
  const rowGrads = new Map(rowStates.map((s, i) => [s, adjoints[dualStates.length + i]]));
  const delta = new Map(allSites.map((k, i) => [k.z, adjoints[dualStates.length + rowStates.length + i]]));
  const sites = new Map(dualStates.map((s) => [s, found.get(s)!.map((k) => ({ ...k, delta: delta.get(k.z)! }))]));
  return { sites, rowGrads, summed };
}
