/** What the checker hands to the IR lowering: the layer with every size resolved to a number. */
import type { Span } from '../diagnostics/diagnostic.ts';
import type { ReadOrder } from '../../core/update-rule.ts';
import type { Body, Expr, FactorSpec, FnDecl, LayerDecl, RateSpec, ScaleSpec } from '../syntax/ast.ts';

export type Shape = readonly number[];

export interface CheckedTensor {
  name: string;
  shape: Shape;
  span: Span;
}

export interface CheckedView {
  name: string;
  /** Per-token shape, e.g. `[64]`. */
  shape: Shape;
  span: Span;
}

export interface CheckedViewFn {
  views: CheckedView[];
  body: Body;
  span: Span;
}

export interface CheckedLayer {
  name: string;
  ast: LayerDecl;
  /** Every `dim` after `-D` overrides, in declaration order. */
  dims: Map<string, number>;
  minibatch: { name: string; size: number };
  states: CheckedTensor[];
  params: CheckedTensor[];
  fns: Map<string, FnDecl>;
  loss: CheckedViewFn;
  output: CheckedViewFn;
  /** Every view name used by `loss` or `output`, once, in first-use order. */
  views: CheckedView[];
  /**
   * `lr` is the rate shared by the states without one of their own (a constant 1, unused, when
   * every state has its own); `rule` says the rest.
   */
  update: { rule: 'sgd'; lr: RateSpec; scale: ScaleSpec; span: Span; rules: CheckedUpdateRule };
  /** Shape of every expression the checker visited (inside fns: for the last call site checked). */
  shapes: Map<Expr, Shape>;
}

/** `-D NAME=VALUE` overrides from the command line (dims and the minibatch size). */
export type DimOverrides = ReadonlyMap<string, number>;

/** The update rule beyond the shared `lr` and `scale` (semantics.md §6). */
export interface CheckedUpdateRule {
  /** The paper's rule: no decay, momentum, rates per state, read order or transforms. */
  plain: boolean;
  /** Every state's rate, and the per-token input it reads when it is `token` (`lr` or `lr.S`). */
  rates: Map<string, { spec: RateSpec; input: string }>;
  /** Absent when it is 1 (decay) or 0 (momentum). */
  decay: FactorSpec | undefined;
  momentum: FactorSpec | undefined;
  read: ReadOrder;
  /** State name → its commit transform. */
  commits: Map<string, Expr>;
  /** State name → Newton–Schulz steps. */
  orthogonalize: Map<string, number>;
}
