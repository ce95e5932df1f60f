/**
 * A position in a tensor of compile-time shape, known either as a flat offset or as one index per
 * axis; the other form is derived with the folding arithmetic of affine.ts, so multi-indices and
 * flat offsets stay short expressions of the few runtime values (element, row, loop counter).
 */
import type { Shape } from '../../core/shape.ts';
import { strides } from '../../core/tensor.ts';
import { add, div, mod, mul } from './affine.ts';
import { type Expr, int } from './ir.ts';

export class Index {
  private constructor(
    readonly shape: Shape,
    private readonly flatExpr: Expr | undefined,
    private readonly dimExprs: readonly Expr[] | undefined,
  ) {}

  static flat(shape: Shape, flat: Expr): Index {
    return new Index(shape, flat, undefined);
  }

  static dims(shape: Shape, dims: readonly Expr[]): Index {
    return new Index(shape, undefined, dims);
  }

  flat(): Expr {
    if (this.flatExpr !== undefined) return this.flatExpr;
    const st = strides(this.shape);
    return this.dimExprs!.reduce((acc, d, i) => add(acc, mul(d, st[i])), int(0));
  }

  dims(): Expr[] {
    if (this.dimExprs !== undefined) return [...this.dimExprs];
    const st = strides(this.shape);
    // The flat index is in range, so the outermost axis needs no modulo.
    return this.shape.map((n, i) =>
      n === 1 ? int(0) : i === 0 ? div(this.flatExpr!, st[i]) : mod(div(this.flatExpr!, st[i]), n),
    );
  }

  /** The same element seen through a reshape to `shape` (row-major order is unchanged). */
  reshaped(shape: Shape): Index {
    return Index.flat(shape, this.flat());
  }
}
