/**
 * Names the values a group of statements reads more than once: each arithmetic value or load
 * reached twice (the same expression object: values are built once per node and index) becomes a
 * constant declared before the group, so it is computed once and no line repeats it.
 */
import { type Expr, type Stmt, constant, mapOperands, name, operands, statementExprs } from './ir.ts';

const worthNaming = (e: Expr) => e.kind === 'unary' || e.kind === 'float-op' || e.kind === 'load';

export function shareValues(group: readonly Stmt[], fresh: () => string): Stmt[] {
  const uses = new Map<Expr, number>();
  const shared: Expr[] = [];
  const visit = (e: Expr): void => {
    const seen = uses.get(e) ?? 0;
    uses.set(e, seen + 1);
    if (seen > 0) return;
    for (const x of operands(e)) visit(x);
    // Operands finish first, so a value's definition comes after those of what it reads.
    shared.push(e);
  };
  for (const s of group) for (const e of statementExprs(s)) visit(e);
  const named = shared.filter((e) => worthNaming(e) && uses.get(e)! > 1);
  if (named.length === 0) return [...group];

  const names = new Map<Expr, Expr>();
  const rewritten = new Map<Expr, Expr>();
  const rewrite = (e: Expr): Expr => names.get(e) ?? body(e);
  const body = (e: Expr): Expr => {
    const known = rewritten.get(e);
    if (known) return known;
    const out = mapOperands(e, rewrite);
    rewritten.set(e, out);
    return out;
  };
  const lets: Stmt[] = [];
  for (const e of named) {
    const n = fresh();
    lets.push(constant(n, 'float', body(e)));
    names.set(e, name(n));
  }
  return [...lets, ...group.map((s) => rewriteStatement(s, rewrite))];
}

function rewriteStatement(s: Stmt, f: (e: Expr) => Expr): Stmt {
  switch (s.kind) {
    case 'let':
    case 'assign':
      return { ...s, value: f(s.value) };
    case 'store':
    case 'store-bf16':
      return { ...s, index: f(s.index), value: f(s.value) };
    case 'pack-fragment':
      return { ...s, values: s.values.map(f) };
    default:
      return s;
  }
}
