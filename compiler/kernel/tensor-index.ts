/**
 * A position in a tensor of compile-time shape, known either as a flat offset or as one index per
 * axis; the other form is derived with the folding arithmetic of affine.ts, so multi-indices and
 * flat offsets stay short expressions of the few runtime values (element, row, loop counter).
 */
import type { Shape } from '../../core/shape.ts';
import { strides } from '../../core/tensor.ts';
import { add, div, mod, mul } from './affine.ts';
import { type Expr, int } from './ir.ts';

/** How extents and strides are written: a named dim where one stands for the number, else the literal. */
export type DimNames = (n: number) => Expr;

/** Every extent and stride as a literal (for shapes that are not the spec's, such as register-tile blocks). */
export const LITERALS: DimNames = int;

export class Index {
  private constructor(
    readonly shape: Shape,
    private readonly flatExpr: Expr | undefined,
    private readonly dimExprs: readonly Expr[] | undefined,
    private readonly names: DimNames,
  ) {}

  static flat(shape: Shape, flat: Expr, names: DimNames): Index {
    return new Index(shape, flat, undefined, names);
  }

  static dims(shape: Shape, dims: readonly Expr[], names: DimNames): Index {
    return new Index(shape, undefined, dims, names);
  }

  /** A position in another tensor, its extents written as this one's. */
  at(shape: Shape, dims: readonly Expr[]): Index {
    return Index.dims(shape, dims, this.names);
  }

  flat(): Expr {
    if (this.flatExpr !== undefined) return this.flatExpr;
    const st = strides(this.shape);
    return this.dimExprs!.reduce((acc, d, i) => add(acc, mul(d, this.names(st[i]))), int(0));
  }

  dims(): Expr[] {
    if (this.dimExprs !== undefined) return [...this.dimExprs];
    const st = strides(this.shape);
    // The flat index is in range, so the outermost axis needs no modulo.
    return this.shape.map((n, i) => {
      if (n === 1) return int(0);
      const outer = div(this.flatExpr!, this.names(st[i]));
      return i === 0 ? outer : mod(outer, this.names(n));
    });
  }

  /** The same element seen through a reshape to `shape` (row-major order is unchanged). */
  reshaped(shape: Shape): Index {
    return Index.flat(shape, this.flat(), this.names);
  }
}
