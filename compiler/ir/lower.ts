/**
 * Lowers `loss` and `output` bodies of a checked layer to row-batched IR (see rows.ts).
 * How states appear is up to the caller (a `StateBinding`): the dual-form derivation binds them
 * differently for the gradient and for the read-out, and watches how each state is used.
 */
import { programKey } from '../../core/mangle.ts';
import type { Span } from '../diagnostics/diagnostic.ts';
import type { CheckedLayer, CheckedViewFn } from '../check/checked.ts';
import type { Body, Expr } from '../syntax/ast.ts';
import { BUILTINS, DEFAULT_EPS } from './builtins.ts';
import type { Builder } from './ir.ts';
import { RowOps, type Val } from './rows.ts';

/** How a state tensor is used at one place in the spec. */
export type UseKind =
  /** `x @ S` with x a vector per token. */
  | 'matmul'
  /** `z + S`, `z - S`, `S + z`, `z * S`, `S * z`. */
  | 'elementwise'
  | 'other';

export interface StateBinding {
  /** The value a state's name stands for. */
  value(state: string): Val;
  /** Told about every use of a state. */
  use?(state: string, kind: UseKind, span: Span): void;
  /** May replace `x @ S` for a state S (x is a row value with token shape [m]). */
  matmul?(state: string, x: Val, s: Val): Val | undefined;
}

export class LowerError extends Error {}

type Env = ReadonlyMap<string, Val>;

export class Lowering {
  readonly ops: RowOps;

  constructor(
    readonly layer: CheckedLayer,
    readonly b: Builder,
    readonly R: number,
    readonly states: StateBinding,
  ) {
    this.ops = new RowOps(b, R);
  }

  /** Lower a loss/output body with its views bound to row inputs `view.NAME` of shape [R, ...]. */
  viewFn(fn: CheckedViewFn): Val {
    const env = new Map<string, Val>();
    for (const v of fn.views)
      env.set(v.name, {
        id: this.b.input(programKey({ role: 'view', name: v.name }), [this.R, ...v.shape]),
        rows: true,
      });
    return this.body(fn.body, env);
  }

  private body(body: Body, outer: Env): Val {
    const env = new Map(outer);
    for (const l of body.lets) env.set(l.name, this.expr(l.value, env));
    return this.expr(body.result, env);
  }

  /** A value consumed by anything but a dual-form position: a state here is an `other` use. */
  private plain(v: Val, span: Span): Val {
    if (v.state !== undefined) this.states.use?.(v.state, 'other', span);
    return { id: v.id, rows: v.rows };
  }

  private name(name: string, env: Env, span: Span): Val {
    const bound = env.get(name);
    if (bound) return bound;
    const L = this.layer;
    if (L.states.some((s) => s.name === name)) return { ...this.states.value(name), state: name };
    const param = L.params.find((p) => p.name === name);
    if (param) return { id: this.b.input(programKey({ role: 'param', name }), param.shape), rows: false };
    const dim = L.dims.get(name) ?? (L.minibatch.name === name ? L.minibatch.size : undefined);
    if (dim !== undefined) return { id: this.b.const(dim), rows: false };
    throw new LowerError(`${span.file}:${span.start.line}:${span.start.col}: unknown name ${name}`);
  }

  expr(e: Expr, env: Env): Val {
    const saved = this.b.origin;
    this.b.origin = e.span;
    try {
      return this.exprInner(e, env);
    } finally {
      this.b.origin = saved;
    }
  }

  private exprInner(e: Expr, env: Env): Val {
    const b = this.b;
    switch (e.kind) {
      case 'number':
        return { id: b.const(e.value), rows: false };
      case 'name':
        return this.name(e.name, env, e.span);
      case 'negate':
        return this.ops.map(this.plain(this.expr(e.operand, env), e.span), (id) => b.neg(id));
      case 'binary':
        return e.op === '@' ? this.matmul(e, env) : this.elementwise(e, env);
      case 'call':
        return this.call(e, env);
    }
  }

  private elementwise(e: Expr & { kind: 'binary' }, env: Env): Val {
    const linear = e.op !== '/';
    const operand = (x: Expr) => {
      const v = this.expr(x, env);
      if (v.state !== undefined && linear) {
        this.states.use?.(v.state, 'elementwise', x.span);
        return { id: v.id, rows: v.rows };
      }
      return this.plain(v, x.span);
    };
    const fn = ({ '+': 'add', '-': 'sub', '*': 'mul', '/': 'div' } as const)[e.op as '+' | '-' | '*' | '/'];
    return this.ops.zip([operand(e.left), operand(e.right)], (a, c) => this.b.binary(fn, a, c));
  }

  private matmul(e: Expr & { kind: 'binary' }, env: Env): Val {
    const b = this.b;
    const ops = this.ops;
    const left = this.plain(this.expr(e.left, env), e.left.span);
    const rightRaw = this.expr(e.right, env);
    const lt = ops.token(left);
    const rt = ops.token(rightRaw);
    const dualPosition = rightRaw.state !== undefined && lt.length === 1 && rt.length === 2;
    if (dualPosition) {
      this.states.use?.(rightRaw.state!, 'matmul', e.right.span);
      const replaced = this.states.matmul?.(rightRaw.state!, left, rightRaw);
      if (replaced) return replaced;
    }
    const right = dualPosition ? { id: rightRaw.id, rows: rightRaw.rows } : this.plain(rightRaw, e.right.span);
    if (lt.length === 1 && rt.length === 1) return ops.sumAll(ops.zip([left, right], (x, y) => b.mul(x, y)));
    // Vectors become [1, m] on the left and [n, 1] on the right, and lose that axis again after.
    const asMatrix = (v: Val, t: readonly number[], side: 'l' | 'r'): Val =>
      t.length === 2
        ? v
        : ops.map(v, (id) => b.reshape(id, [...(v.rows ? [this.R] : []), ...(side === 'l' ? [1, t[0]] : [t[0], 1])]));
    const product = ops.matmul(asMatrix(left, lt, 'l'), asMatrix(right, rt, 'r'));
    const pt = ops.token(product);
    const token = lt.length === 1 ? [pt[1]] : rt.length === 1 ? [pt[0]] : pt;
    return ops.map(product, (id) => b.reshape(id, [...(product.rows ? [this.R] : []), ...token]));
  }

  private call(e: Expr & { kind: 'call' }, env: Env): Val {
    const fn = this.layer.fns.get(e.callee);
    if (fn) {
      const inner = new Map<string, Val>();
      fn.params.forEach((p, i) => inner.set(p.name, this.expr(e.args[i], env)));
      return this.body(fn.body, inner);
    }
    const builtin = BUILTINS[e.callee];
    if (!builtin) throw new LowerError(`unknown function ${e.callee}`);
    const args = e.args.map((a) => this.plain(this.expr(a, env), a.span));
    const epsArg = e.named.find((n) => n.name === 'eps');
    const eps = epsArg ? this.constant(epsArg.value) : DEFAULT_EPS;
    return builtin(this.ops, args, eps);
  }

  /** A compile-time number (named arguments such as `eps`). */
  private constant(e: Expr): number {
    const v = this.expr(e, new Map());
    const c = this.b.constValue(v.id);
    if (c === undefined) throw new LowerError('expected a constant');
    return c;
  }
}
