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

/** An expression being lowered, with the values of the operands lowered so far. */
interface ExprTask {
  kind: 'expr';
  e: Expr;
  env: Env;
  vals: Val[];
}

/** A body being lowered: the values of its lets so far, then of its result. */
interface BodyTask {
  kind: 'body';
  body: Body;
  env: Map<string, Val>;
  vals: Val[];
}

type Task = ExprTask | BodyTask;

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

  /** Lower one expression (a commit transform, say) with names bound by `env` and the layer. */
  expr(e: Expr, env: Env = new Map()): Val {
    return this.body({ lets: [], result: e, span: e.span }, env);
  }

  /**
   * Lowers a body: its lets in order, then its result. Fn calls are inlined, so the spec's depth
   * (fns calling fns, expressions within expressions) is walked with an explicit stack of tasks
   * instead of recursion; each task's operands are finished, in source order, before it is.
   */
  private body(root: Body, outer: Env): Val {
    const saved = this.b.origin;
    const stack: Task[] = [{ kind: 'body', body: root, env: new Map(outer), vals: [] }];
    let result: Val | undefined;
    try {
      while (stack.length) {
        const t = stack[stack.length - 1];
        const next = this.next(t);
        if (next) {
          stack.push(next);
          continue;
        }
        if (t.kind === 'expr') this.b.origin = t.e.span;
        const v = t.kind === 'body' ? t.vals[t.vals.length - 1] : this.finish(t);
        stack.pop();
        const parent = stack[stack.length - 1];
        if (!parent) result = v;
        else if (parent.kind === 'body') this.bindLet(parent, v);
        else this.accept(parent, v);
      }
    } finally {
      this.b.origin = saved;
    }
    return result!;
  }

  /** The task to run before `t` can finish, if any. */
  private next(t: Task): Task | undefined {
    if (t.kind === 'body') {
      const { lets, result } = t.body;
      const i = t.vals.length;
      if (i < lets.length) return { kind: 'expr', e: lets[i].value, env: t.env, vals: [] };
      return i === lets.length ? { kind: 'expr', e: result, env: t.env, vals: [] } : undefined;
    }
    const e = t.e;
    const i = t.vals.length;
    switch (e.kind) {
      case 'number':
      case 'name':
        return undefined;
      case 'negate':
        return i === 0 ? { kind: 'expr', e: e.operand, env: t.env, vals: [] } : undefined;
      case 'binary':
        return i < 2 ? { kind: 'expr', e: i === 0 ? e.left : e.right, env: t.env, vals: [] } : undefined;
      case 'call': {
        if (i < e.args.length) return { kind: 'expr', e: e.args[i], env: t.env, vals: [] };
        const fn = this.layer.fns.get(e.callee);
        if (!fn || i > e.args.length) return undefined;
        // The arguments are done: the fn's body, with its parameters bound to them, is the call's value.
        const inner = new Map<string, Val>(fn.params.map((p, k) => [p.name, t.vals[k]]));
        return { kind: 'body', body: fn.body, env: inner, vals: [] };
      }
    }
  }

  private bindLet(t: BodyTask, v: Val): void {
    const lets = t.body.lets;
    if (t.vals.length < lets.length) t.env.set(lets[t.vals.length].name, v);
    t.vals.push(v);
  }

  /** Takes an operand's value as soon as it is lowered, telling the binding how a state is used. */
  private accept(t: ExprTask, v: Val): void {
    const e = t.e;
    const i = t.vals.length;
    if (e.kind === 'binary' && e.op !== '@') t.vals.push(this.operand(e, i === 0 ? e.left : e.right, v));
    else if (e.kind === 'binary' && i === 0) t.vals.push(this.plain(v, e.left.span));
    else if (e.kind === 'call' && !this.layer.fns.has(e.callee) && i < e.args.length)
      t.vals.push(this.plain(v, e.args[i].span));
    else t.vals.push(v);
  }

  /** A `+ - * /` operand: a state here is an elementwise use, except as a divisor. */
  private operand(e: Expr & { kind: 'binary' }, x: Expr, v: Val): Val {
    if (v.state !== undefined && e.op !== '/') {
      this.states.use?.(v.state, 'elementwise', x.span);
      return { id: v.id, rows: v.rows };
    }
    return this.plain(v, x.span);
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

  /** An expression's value from its operands' (with the builder's origin at the expression). */
  private finish(t: ExprTask): Val {
    const b = this.b;
    const { e, vals } = t;
    switch (e.kind) {
      case 'number':
        return { id: b.const(e.value), rows: false };
      case 'name':
        return this.name(e.name, t.env, e.span);
      case 'negate':
        return this.ops.map(this.plain(vals[0], e.span), (id) => b.neg(id));
      case 'binary': {
        if (e.op === '@') return this.matmul(e, vals[0], vals[1]);
        const fn = ({ '+': 'add', '-': 'sub', '*': 'mul', '/': 'div' } as const)[e.op];
        return this.ops.zip([vals[0], vals[1]], (a, c) => b.binary(fn, a, c));
      }
      case 'call': {
        if (this.layer.fns.has(e.callee)) return vals[e.args.length];
        const builtin = BUILTINS[e.callee];
        if (!builtin) throw new LowerError(`unknown function ${e.callee}`);
        const epsArg = e.named.find((n) => n.name === 'eps');
        const eps = epsArg ? this.constant(epsArg.value) : DEFAULT_EPS;
        return builtin(this.ops, vals, eps);
      }
    }
  }

  /** `left @ right`, with left already taken as a plain value and right as lowered. */
  private matmul(e: Expr & { kind: 'binary' }, left: Val, rightRaw: Val): Val {
    const b = this.b;
    const ops = this.ops;
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

  /** A compile-time number (named arguments such as `eps`). */
  private constant(e: Expr): number {
    const v = this.body({ lets: [], result: e, span: e.span }, new Map());
    const c = this.b.constValue(v.id);
    if (c === undefined) throw new LowerError('expected a constant');
    return c;
  }
}
