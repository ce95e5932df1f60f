/** The `.ttt` abstract syntax tree. Every node keeps its source span for diagnostics. */
import type { Span } from '../diagnostics/diagnostic.ts';

export type BinaryOperator = '+' | '-' | '*' | '/' | '@';

export type Expr =
  | { kind: 'number'; value: number; span: Span }
  | { kind: 'name'; name: string; span: Span }
  | { kind: 'binary'; op: BinaryOperator; left: Expr; right: Expr; span: Span }
  | { kind: 'negate'; operand: Expr; span: Span }
  | { kind: 'call'; callee: string; calleeSpan: Span; args: Expr[]; named: NamedArg[]; span: Span };

export interface NamedArg {
  name: string;
  value: Expr;
  span: Span;
}

/** `[D, H]`; an empty list is a scalar. Each entry is a dim expression. */
export interface TypeExpr {
  dims: Expr[];
  span: Span;
}

export interface Param {
  name: string;
  /** The name alone (declarations below have one too), so diagnostics can point at it. */
  nameSpan: Span;
  type: TypeExpr;
  span: Span;
}

export interface LetStmt {
  name: string;
  nameSpan: Span;
  value: Expr;
  span: Span;
}

/** A body is `= EXPR` or `{ let ...; return EXPR }`; both become lets plus a result. */
export interface Body {
  lets: LetStmt[];
  result: Expr;
  span: Span;
}

export interface DimDecl {
  kind: 'dim';
  name: string;
  nameSpan: Span;
  value: Expr;
  span: Span;
}

export interface MinibatchDecl {
  kind: 'minibatch';
  name: string;
  nameSpan: Span;
  value: Expr;
  span: Span;
}

export interface TensorDecl {
  kind: 'state' | 'param';
  name: string;
  nameSpan: Span;
  type: TypeExpr;
  span: Span;
}

export interface FnDecl {
  kind: 'fn';
  name: string;
  nameSpan: Span;
  params: Param[];
  returnType: TypeExpr | undefined;
  body: Body;
  span: Span;
}

/** `loss(k: [D], v: [D]) = ...` or `output(q: [D]) = ...`: the parameters are per-token views. */
export interface ViewFnDecl {
  kind: 'loss' | 'output';
  params: Param[];
  body: Body;
  span: Span;
}

export type RateSpec = { kind: 'token'; span: Span } | { kind: 'constant'; value: number; span: Span };
export type ScaleSpec =
  { kind: 'position'; span: Span } | { kind: 'none'; span: Span } | { kind: 'constant'; value: number; span: Span };

/** A per-token factor of the update (decay, momentum): a `[T]` input or a constant. */
export type FactorSpec = RateSpec;

/** Which state a token's output reads (semantics.md §6). */
export type ReadOrder = 'causal' | 'before' | 'after';

/** `lr W1: token` in the update's block: a rate of its own for one state. */
export interface StateRate {
  state: string;
  stateSpan: Span;
  rate: RateSpec;
  span: Span;
}

/** `commit W1 = EXPR`: the state is replaced by EXPR when a mini-batch ends. */
export interface CommitTransform {
  state: string;
  stateSpan: Span;
  value: Expr;
  span: Span;
}

/** `orthogonalize W1(steps: 5)`: Newton–Schulz on the mini-batch's summed update of W1 (Muon). */
export interface Orthogonalize {
  state: string;
  stateSpan: Span;
  steps: number;
  stepsSpan: Span;
  span: Span;
}

export interface UpdateDecl {
  kind: 'update';
  rule: string;
  ruleSpan: Span;
  /** Undefined only when the block gives rates of their own (the checker asks that every state has one). */
  lr: RateSpec | undefined;
  scale: ScaleSpec;
  decay: FactorSpec | undefined;
  momentum: FactorSpec | undefined;
  read: { order: ReadOrder; span: Span } | undefined;
  rates: StateRate[];
  commits: CommitTransform[];
  orthogonalize: Orthogonalize[];
  span: Span;
}

export type Member = DimDecl | MinibatchDecl | TensorDecl | FnDecl | ViewFnDecl | UpdateDecl;

export interface LayerDecl {
  name: string;
  nameSpan: Span;
  members: Member[];
  span: Span;
}

export interface SourceFile {
  file: string;
  text: string;
  layer: LayerDecl | undefined;
}
