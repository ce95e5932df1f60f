/**
 * Constants a kernel could not hold: every number the spec writes and every constant
 * subexpression (folded in f64, as the compiler folds it) must be a finite f32 value, since the
 * generated WGSL and CUDA write them as f32 literals and WGSL refuses any that overflow.
 */
import { diag } from '../diagnostics/codes.ts';
import type { BinaryOperator, Expr, LayerDecl, UpdateDecl } from '../syntax/ast.ts';
import { postorder } from '../syntax/walk.ts';
import type { Report } from './scope.ts';

/** The largest finite f32, exactly. */
export const F32_MAX = 3.4028234663852886e38;

export function isF32(value: number): boolean {
  return Number.isFinite(value) && Math.abs(value) <= F32_MAX;
}

/** Built-ins of one scalar argument that fold as the compiler folds them (their IR is elementwise). */
const FOLDABLE: Partial<Record<string, (x: number) => number>> = {
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  exp: Math.exp,
  log: Math.log,
  tanh: Math.tanh,
  square: (x) => x * x,
  relu: (x) => (x > 0 ? x : 0),
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
};

const BINARY: Record<BinaryOperator, (l: number, r: number) => number> = {
  '+': (l, r) => l + r,
  '-': (l, r) => l - r,
  '*': (l, r) => l * r,
  '/': (l, r) => l / r,
  '@': (l, r) => l * r, // only scalars are constants
};

function fold(e: Expr, value: ReadonlyMap<Expr, number>): number | undefined {
  switch (e.kind) {
    case 'number':
      return e.value;
    case 'name':
      return undefined;
    case 'negate': {
      const v = value.get(e.operand);
      return v === undefined ? undefined : -v;
    }
    case 'binary': {
      const l = value.get(e.left);
      const r = value.get(e.right);
      return l === undefined || r === undefined ? undefined : BINARY[e.op](l, r);
    }
    case 'call': {
      const f = FOLDABLE[e.callee];
      const x = e.args.length === 1 && e.named.length === 0 ? value.get(e.args[0]) : undefined;
      return f && x !== undefined ? f(x) : undefined;
    }
  }
}

/** Reports numbers and constant subexpressions of the layer's bodies that are not finite f32 values. */
export function checkConstants(layer: LayerDecl, report: Report): void {
  for (const member of layer.members) {
    if (member.kind !== 'fn' && member.kind !== 'loss' && member.kind !== 'output') continue;
    for (const root of [...member.body.lets.map((l) => l.value), member.body.result]) checkExpr(root, report);
  }
}

function checkExpr(root: Expr, report: Report): void {
  // Constant values by node; a node whose value was reported is left out, so only the innermost
  // offending subexpression is reported.
  const value = new Map<Expr, number>();
  postorder(root, (e) => {
    const v = fold(e, value);
    if (v === undefined) return;
    if (isF32(v)) value.set(e, v);
    else if (e.kind === 'number')
      report(diag('TTT318', e.span, `${e.value} is outside the range of f32 (±${F32_MAX.toPrecision(9)})`));
    else report(diag('TTT319', e.span, `this constant expression is ${describe(v)}, not a finite f32 value`));
  });
}

function describe(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'infinite' : '-infinite';
  return `${v}, beyond f32`;
}

/** A constant learning rate or scale is an f32 in the kernel too. */
export function checkUpdateConstants(update: UpdateDecl, report: Report): void {
  const rates = update.rates.map((r) => r.rate);
  for (const arg of [update.lr, update.scale, update.decay, update.momentum, ...rates]) {
    if (arg?.kind === 'constant' && Number.isFinite(arg.value) && arg.value > F32_MAX)
      report(diag('TTT318', arg.span, `${arg.value} is outside the range of f32 (±${F32_MAX.toPrecision(9)})`));
  }
}
