/**
 * Index expressions as source text. All shapes are compile-time constants, so multi-indices and
 * flat offsets fold to short expressions of the few runtime variables (element, row, loop).
 */
import type { Shape } from '../../compiler/ir/ir.ts';
import { strides } from '../../core/tensor.ts';

const isNum = (s: string) => /^\d+$/.test(s);
const wrap = (s: string) => (/^[\w.[\]]+$/.test(s) ? s : `(${s})`);

export function add(a: string, b: string): string {
  if (a === '0') return b;
  if (b === '0') return a;
  if (isNum(a) && isNum(b)) return String(Number(a) + Number(b));
  return `${a} + ${b}`;
}

export function mul(a: string, n: number): string {
  if (n === 0 || a === '0') return '0';
  if (n === 1) return a;
  if (isNum(a)) return String(Number(a) * n);
  return `${wrap(a)} * ${n}`;
}

export function div(a: string, n: number): string {
  if (n === 1) return a;
  if (isNum(a)) return String(Math.floor(Number(a) / n));
  return `${wrap(a)} / ${n}`;
}

export function mod(a: string, n: number): string {
  if (n === 1) return '0';
  if (isNum(a)) return String(Number(a) % n);
  return `${wrap(a)} % ${n}`;
}

/** A position in a tensor of `shape`, known either as a flat offset or as one expression per axis. */
export class Index {
  private constructor(
    readonly shape: Shape,
    private readonly flatExpr: string | undefined,
    private readonly dimExprs: readonly string[] | undefined,
  ) {}

  static flat(shape: Shape, flat: string): Index {
    return new Index(shape, flat, undefined);
  }

  static dims(shape: Shape, dims: readonly string[]): Index {
    return new Index(shape, undefined, dims);
  }

  flat(): string {
    if (this.flatExpr !== undefined) return this.flatExpr;
    const st = strides(this.shape);
    return this.dimExprs!.reduce((acc, d, i) => add(acc, mul(d, st[i])), '0');
  }

  dims(): string[] {
    if (this.dimExprs !== undefined) return [...this.dimExprs];
    const st = strides(this.shape);
    // The flat index is in range, so the outermost axis needs no modulo.
    return this.shape.map((n, i) =>
      n === 1 ? '0' : i === 0 ? div(this.flatExpr!, st[i]) : mod(div(this.flatExpr!, st[i]), n),
    );
  }

  /** The same element seen through a reshape to `shape` (row-major order is unchanged). */
  reshaped(shape: Shape): Index {
    return Index.flat(shape, this.flat());
  }
}
