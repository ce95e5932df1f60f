/**
 * Values of a row-batched lowering. A per-token value is lowered once for all R rows of a
 * mini-batch: when `rows` is true its IR shape is [R, ...token shape], else it is the token shape
 * itself (parameters, states, constants) and is broadcast over rows only where it meets a row value.
 */
import type { Builder, Shape } from './ir.ts';

export interface Val {
  id: number;
  rows: boolean;
  /** Set while the value is exactly a state tensor, so its use site can be classified. */
  state?: string;
}

export class RowOps {
  constructor(
    readonly b: Builder,
    readonly R: number,
  ) {}

  token(v: Val): Shape {
    const s = this.b.shape(v.id);
    return v.rows ? s.slice(1) : s;
  }

  /** The value with a row axis, broadcasting a row-free value over the R rows. */
  lift(v: Val): number {
    return v.rows ? v.id : this.b.expand(v.id, [this.R, ...this.token(v)]);
  }

  /** Broadcast `v` (token shape [] or equal to `token`) to `token`, with rows when `rows`. */
  broadcast(v: Val, token: Shape, rows: boolean): number {
    const b = this.b;
    if (!v.rows) return b.expand(v.id, rows ? [this.R, ...token] : token);
    const t = this.token(v);
    const padded = b.reshape(v.id, [this.R, ...new Array(token.length - t.length).fill(1), ...t]);
    return b.expand(padded, [this.R, ...token]);
  }

  /** Apply `f` to operands brought to a common shape (equal token shapes, or one a scalar). */
  zip(vals: Val[], f: (...ids: number[]) => number): Val {
    const rows = vals.some((v) => v.rows);
    const token = vals.map((v) => this.token(v)).reduce((a, s) => (s.length > a.length ? s : a));
    return { id: f(...vals.map((v) => this.broadcast(v, token, rows))), rows };
  }

  map(v: Val, f: (id: number) => number): Val {
    return { id: f(v.id), rows: v.rows };
  }

  /** Axes of the token part of `v`. */
  tokenAxes(v: Val): number[] {
    const r = this.token(v).length;
    return [...Array(r).keys()].map((a) => a + (v.rows ? 1 : 0));
  }

  /** Sum of every token axis: a scalar per row. */
  sumAll(v: Val): Val {
    return { id: this.b.sum(v.id, this.tokenAxes(v)), rows: v.rows };
  }

  /**
   * The product of token matrices [m, k] @ [k, n]. Row values on the right need a batched
   * product; a row value on the left only folds its rows into m.
   */
  matmul(a: Val, c: Val): Val {
    const b = this.b;
    const [m, k] = this.token(a);
    const n = this.token(c)[1];
    if (!a.rows && !c.rows) return { id: b.matmul(a.id, c.id), rows: false };
    if (!c.rows) {
      const flat = b.matmul(b.reshape(a.id, [this.R * m, k]), c.id);
      return { id: b.reshape(flat, [this.R, m, n]), rows: true };
    }
    return { id: b.matmul(this.lift(a), c.id), rows: true };
  }
}
