/**
 * The named constants of a kernel: the mini-batch size, rows per chunk, and the spec's dims. An
 * extent or stride is written as a dim's name where exactly one of them has that value, so
 * `e % dim_D` says which axis it walks; otherwise (and for 1) it stays a literal.
 */
import type { CheckedLayer } from '../check/checked.ts';
import { dimConstant } from '../../core/mangle.ts';
import { dim } from './affine.ts';
import { type DimConstant, type Expr, type Stmt, everyExpr, int } from './ir.ts';
import type { DimNames } from './tensor-index.ts';

export class KernelDims {
  /** Tokens per mini-batch, and rows per chunk (K for prefill, fewer for decode). */
  readonly K: Expr;
  readonly rows: Expr;
  private readonly all: { expr: Expr & { kind: 'dim' }; note: string }[];
  readonly names: DimNames;

  constructor(layer: CheckedLayer, rows: number) {
    const minibatch = layer.minibatch;
    const K = dim(dimConstant(minibatch.name), minibatch.size) as Expr & { kind: 'dim' };
    const R = dim('chunk_rows', rows) as Expr & { kind: 'dim' };
    this.K = K;
    this.rows = R;
    const spec = [...layer.dims]
      .filter(([n]) => n !== minibatch.name)
      .map(([n, value]) => ({
        expr: dim(dimConstant(n), value) as Expr & { kind: 'dim' },
        note: `The spec's \`dim ${n}\`.`,
      }));
    this.all = [
      { expr: K, note: `Tokens per mini-batch (the spec's \`minibatch ${minibatch.name}\`).` },
      { expr: R, note: 'Rows per chunk: at most this many tokens of one mini-batch are processed at once.' },
      ...spec,
    ];
    const byValue = new Map<number, Expr[]>();
    for (const { expr } of [this.all[0], ...spec]) byValue.set(expr.value, [...(byValue.get(expr.value) ?? []), expr]);
    this.names = (n) => {
      const candidates = byValue.get(n) ?? [];
      return candidates.length === 1 && n > 1 ? candidates[0] : int(n);
    };
  }

  /** The constants `body` reads, to declare: the mini-batch, rows per chunk, then the spec's in order. */
  declared(body: readonly Stmt[]): DimConstant[] {
    const used = new Set(everyExpr(body).flatMap((x) => (x.kind === 'dim' ? [x.name] : [])));
    return this.all
      .filter((d) => used.has(d.expr.name))
      .map((d) => ({ name: d.expr.name, value: d.expr.value, note: d.note }));
  }
}
