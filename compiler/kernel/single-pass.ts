/**
 * Loops that no invocation runs twice, written as guards. A stage's loop over its elements steps by
 * the invocations (or a warp's lanes) that share it; where the stage has no more elements than
 * that, each invocation runs the body once or not at all. A target compiler keeps a loop's values
 * live around its back edge all the same: under its launch bound, ptxas gave three_layer_mlp's
 * sm_90 prefill 80 registers and a 4-byte spill with these loops, and 78 and none with guards.
 *
 * `for (e = from; e < to; e += step)` runs at most once when `to` is a sum of terms of `from`
 * (indices are unsigned, so `from` is at least any of its terms) and a constant no larger than
 * `step`, or a `min` whose operand is. It becomes `if (from < to) { const e = from; ... }`, the
 * condition without the terms `from` and `to` share (`lane < 2` for `warp * 2 + lane < warp * 2 + 2`),
 * or a bare scope where that condition always holds (`lane < 32` in a warp of 32 lanes).
 */
import { add } from './affine.ts';
import { type Expr, type Stmt, compare, constant, int, namesRead } from './ir.ts';

export function guardSinglePassLoops(
  body: readonly Stmt[],
  /** How many values each of the kernel's own names takes (`tid`: the invocations, `lane`: a warp's lanes). */
  values: ReadonlyMap<string, number>,
): Stmt[] {
  return body.map((s) => {
    if (s.kind !== 'for' && s.kind !== 'while' && s.kind !== 'if' && s.kind !== 'block') return s;
    const inner = guardSinglePassLoops(s.body, values);
    if (s.kind !== 'for') return { ...s, body: inner };
    const once = s.step.kind === 'int' ? onceCondition(s.from, s.to, s.step.value) : undefined;
    if (!once) return { ...s, body: inner };
    const counter = namesRead(inner).has(s.counter) ? [constant(s.counter, 'index', once.counter)] : [];
    const body = [...counter, ...inner];
    return always(once.condition, values) ? { kind: 'block', body } : { kind: 'if', condition: once.condition, body };
  });
}

/** Whether `name < limit` holds for every value the name takes. */
function always(condition: Expr, values: ReadonlyMap<string, number>): boolean {
  if (condition.kind !== 'compare' || condition.a.kind !== 'name' || condition.b.kind !== 'int') return false;
  const count = values.get(condition.a.name);
  return count !== undefined && count <= condition.b.value;
}

/**
 * The condition under which the loop runs its one pass, and the counter's value in it; undefined
 * where it may run more. Under `lane < 1` the lane is 0, so `warp + lane` is `warp`.
 */
function onceCondition(from: Expr, to: Expr, step: number): { condition: Expr; counter: Expr } | undefined {
  if (to.kind === 'min') {
    const bounded = [to.a, to.b].some((bound) => remainder(from, bound, step) !== undefined);
    return bounded ? { condition: compare('<', from, to), counter: from } : undefined;
  }
  const rest = remainder(from, to, step);
  if (!rest) return undefined;
  const zero = rest.limit === 1 && rest.from.kind === 'name';
  return { condition: compare('<', rest.from, int(rest.limit)), counter: zero ? rest.shared : from };
}

/**
 * Where `to` is some of `from`'s terms (`shared`) plus a constant `limit` no larger than `step`:
 * `from` without those terms, the terms, and the limit.
 */
function remainder(from: Expr, to: Expr, step: number): { from: Expr; shared: Expr; limit: number } | undefined {
  const own = terms(from);
  const shared: Expr[] = [];
  let limit = 0;
  for (const t of terms(to)) {
    if (t.kind === 'int') {
      limit += t.value;
      continue;
    }
    const i = own.findIndex((o) => same(o, t));
    if (i < 0) return undefined;
    shared.push(...own.splice(i, 1));
  }
  // A loop from a constant alone (`k0 = 0`) is the target compiler's to unroll.
  if (limit > step || own.every((t) => t.kind === 'int')) return undefined;
  const sum = (ts: Expr[]) => ts.reduce((x, y) => add(x, y), int(0));
  return { from: sum(own), shared: sum(shared), limit };
}

/** The terms of a sum, left to right. */
function terms(e: Expr): Expr[] {
  return e.kind === 'index' && e.op === '+' ? [...terms(e.a), ...terms(e.b)] : [e];
}

const same = (a: Expr, b: Expr) => JSON.stringify(a) === JSON.stringify(b);
