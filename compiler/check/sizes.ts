/**
 * Sizes: the `dim`s and the `minibatch` evaluated in declaration order (after `-D` overrides), and
 * type expressions like `[D, 4 * D]` resolved to shapes.
 */
import { diag } from '../diagnostics/codes.ts';
import type { Span } from '../diagnostics/diagnostic.ts';
import type { Expr, TypeExpr } from '../syntax/ast.ts';
import type { DimOverrides, Shape } from './checked.ts';
import { describeSymbol, type LayerScope, type Report } from './scope.ts';

/** Looks a name up as a size; undefined once the problem is reported (or was reported earlier). */
type SizeLookup = (name: string, span: Span) => number | undefined;

export class Sizes {
  /** Every size that evaluated, by name. */
  readonly values = new Map<string, number>();

  constructor(
    private readonly scope: LayerScope,
    private readonly report: Report,
  ) {}

  /** Evaluates every dim and the minibatch in order; an override replaces the declared value. */
  evaluate(overrides: DimOverrides): void {
    const declared = new Set(this.scope.sizes.map((d) => d.name));
    for (const name of overrides.keys()) {
      if (!declared.has(name)) {
        this.report(
          diag(
            'TTT306',
            this.scope.layer.nameSpan,
            `-D ${name}=${overrides.get(name)}: layer '${this.scope.layer.name}' has no dim or minibatch '${name}'`,
          ),
        );
      }
    }
    const done = new Set<string>();
    for (const decl of this.scope.sizes) {
      const lookup: SizeLookup = (name, span) => {
        if (done.has(name)) return this.values.get(name);
        const symbol = this.scope.symbols.get(name);
        if (symbol?.kind === 'dim' || symbol?.kind === 'minibatch') {
          const why =
            symbol === decl
              ? `'${name}' cannot be defined in terms of itself`
              : `'${name}' is declared after '${decl.name}'`;
          return this.fail(
            diag('TTT302', span, why, 'a dim may use only dims declared above it; move the declaration up'),
          );
        }
        return this.notASize(name, span);
      };
      const computed = this.integer(decl.value, lookup);
      const override = overrides.get(decl.name);
      if (override !== undefined) {
        if (isPositiveInteger(override)) this.values.set(decl.name, override);
        else
          this.report(
            diag('TTT301', decl.nameSpan, `-D ${decl.name}=${override}: a ${decl.kind} must be a positive integer`),
          );
      } else if (computed !== undefined) {
        if (isPositiveInteger(computed)) this.values.set(decl.name, computed);
        else
          this.report(
            diag('TTT301', decl.value.span, `${decl.kind} '${decl.name}' is ${computed}, not a positive integer`),
          );
      }
      done.add(decl.name);
    }
  }

  /** `[D, 4 * D]` -> `[64, 256]`; undefined if any size fails (and is reported). */
  resolve(type: TypeExpr): Shape | undefined {
    const lookup: SizeLookup = (name, span) => {
      const symbol = this.scope.symbols.get(name);
      if (symbol?.kind === 'dim' || symbol?.kind === 'minibatch') return this.values.get(name);
      return this.notASize(name, span);
    };
    const sizes = type.dims.map((dim) => {
      const n = this.integer(dim, lookup);
      if (n === undefined || isPositiveInteger(n)) return n;
      return this.fail(diag('TTT301', dim.span, `a size must be a positive integer, but this is ${n}`));
    });
    if (sizes.length > 2)
      return this.fail(
        diag('TTT307', type.span, `a tensor has at most 2 dimensions, but this type has ${sizes.length}`),
      );
    return sizes.every((n) => n !== undefined) ? (sizes as number[]) : undefined;
  }

  private notASize(name: string, span: Span): undefined {
    const symbol = this.scope.symbols.get(name);
    if (symbol)
      return this.fail(
        diag('TTT203', span, `${describeSymbol(symbol)} is not a size; only dims and the minibatch are`),
      );
    return this.fail(diag('TTT302', span, `unknown dim '${name}'`));
  }

  /** Integer arithmetic over numbers and sizes; both sides are evaluated so every error is found. */
  private integer(e: Expr, lookup: SizeLookup): number | undefined {
    switch (e.kind) {
      case 'number':
        return Number.isInteger(e.value)
          ? e.value
          : this.fail(diag('TTT316', e.span, `${e.value} is not a whole number`));
      case 'name':
        return lookup(e.name, e.span);
      case 'negate': {
        const v = this.integer(e.operand, lookup);
        return v === undefined ? undefined : -v;
      }
      case 'call':
        return this.fail(diag('TTT316', e.span, 'a size cannot call a function'));
      case 'binary': {
        const left = this.integer(e.left, lookup);
        const right = this.integer(e.right, lookup);
        if (e.op === '@') return this.fail(diag('TTT316', e.span, "a size cannot use '@'"));
        if (left === undefined || right === undefined) return undefined;
        switch (e.op) {
          case '+':
            return left + right;
          case '-':
            return left - right;
          case '*':
            return left * right;
          case '/':
            if (right === 0) return this.fail(diag('TTT303', e.span, 'division by zero'));
            if (left % right !== 0)
              return this.fail(diag('TTT303', e.span, `${left} / ${right} is not a whole number`));
            return left / right;
        }
      }
    }
  }

  private fail(d: Parameters<Report>[0]): undefined {
    this.report(d);
    return undefined;
  }
}

function isPositiveInteger(n: number): boolean {
  return Number.isSafeInteger(n) && n > 0;
}
