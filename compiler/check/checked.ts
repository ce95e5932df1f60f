/** What the checker hands to the IR lowering: the layer with every size resolved to a number. */
import type { Span } from '../diagnostics/diagnostic.ts';
import type { Body, Expr, FnDecl, LayerDecl, RateSpec, ScaleSpec } from '../syntax/ast.ts';

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
  update: { rule: 'sgd'; lr: RateSpec; scale: ScaleSpec; span: Span };
  /** Shape of every expression the checker visited (inside fns: for the last call site checked). */
  shapes: Map<Expr, Shape>;
}

/** `-D NAME=VALUE` overrides from the command line (dims and the minibatch size). */
export type DimOverrides = ReadonlyMap<string, number>;
