/**
 * The index arithmetic of a kernel body evaluated for the lanes of one warp (tid 0..31) at sample
 * points of the loops around a statement: what compiler/kernel/banks.ts counts bank conflicts
 * from. Values computed at run time (uniforms, the walk's position) are unknown; a loop whose
 * bounds depend on one is sampled once.
 */
import { type Expr, type Stmt, operands } from './ir.ts';

/** Lanes of a warp (a WebGPU subgroup is taken to be as wide). */
export const LANES = 32;

/** One value per lane; undefined where it is only known at run time. */
export type Lanes = Float64Array;
export type Env = Map<string, Lanes | undefined>;

export function lanes(f: (lane: number) => number): Lanes {
  const out = new Float64Array(LANES);
  for (let i = 0; i < LANES; i++) out[i] = f(i);
  return out;
}
const ZERO = new Float64Array(LANES);

/** `op` of two index values, lane by lane. */
export function binary(op: string, x: Lanes, y: Lanes): Lanes {
  const out = new Float64Array(LANES);
  for (let i = 0; i < LANES; i++) {
    const [a, b] = [x[i], y[i]];
    switch (op) {
      case '+':
        out[i] = a + b;
        break;
      case '-':
        out[i] = a - b;
        break;
      case '*':
        out[i] = a * b;
        break;
      case '/':
        out[i] = Math.floor(a / b);
        break;
      case '%':
        out[i] = a % b;
        break;
      case '^':
        out[i] = (a ^ b) >>> 0;
        break;
      case 'min':
        out[i] = Math.min(a, b);
        break;
      case '<':
        out[i] = Number(a < b);
        break;
      case '<=':
        out[i] = Number(a <= b);
        break;
      case '==':
        out[i] = Number(a === b);
        break;
      case '!=':
        out[i] = Number(a !== b);
        break;
      case 'or':
        out[i] = Number(a !== 0 || b !== 0);
        break;
    }
  }
  return out;
}

/**
 * An index-typed expression for every lane, every on-chip element in it row-major; unknown where
 * it depends on a run-time value. `known` holds the values already computed at this sample.
 */
export function evaluate(e: Expr, env: Env, known: Map<Expr, Lanes | undefined>): Lanes | undefined {
  if (known.has(e)) return known.get(e);
  let out: Lanes | undefined;
  switch (e.kind) {
    case 'int':
    case 'dim':
      out = new Float64Array(LANES).fill(e.value);
      break;
    case 'name':
      out = env.get(e.name);
      break;
    case 'index':
    case 'min':
    case 'compare':
    case 'or': {
      const [x, y] = [evaluate(e.a, env, known), evaluate(e.b, env, known)];
      out = x && y ? binary(e.kind === 'index' || e.kind === 'compare' ? e.op : e.kind, x, y) : undefined;
      break;
    }
    case 'select': {
      const [c, a, b] = [e.condition, e.ifTrue, e.ifFalse].map((x) => evaluate(x, env, known));
      out = c && a && b ? lanes((i) => (c[i] ? a[i] : b[i])) : undefined;
      break;
    }
    case 'on-chip-element':
      out = evaluate(e.flat, env, known);
      break;
  }
  known.set(e, out);
  return out;
}

/** An address at a sample: a run-time value in it reads as 0 (the address at one position). */
export const address = (e: Expr, x: Sample): Lanes =>
  evaluate(e, x.env, x.known) ?? evaluate(e, x.env, new Map([...zeroUnknown(e, x)]))!;

/** Every name and uniform under `e` the sample does not know, as 0. */
function zeroUnknown(e: Expr, x: Sample): Map<Expr, Lanes> {
  const out = new Map<Expr, Lanes>();
  const pending = [e];
  while (pending.length > 0) {
    const y = pending.pop()!;
    if ((y.kind === 'name' && !x.env.get(y.name)) || y.kind === 'uniform') out.set(y, ZERO);
    else pending.push(...operands(y));
  }
  return out;
}

/** The lanes of a warp at one sample point of the loops around a statement. */
export interface Sample {
  env: Env;
  active: Uint8Array;
  /** Times a warp reaches this point per chunk, divided among the samples taken. */
  weight: number;
  /** Index values computed at this sample (cleared when a name in `env` is assigned). */
  known: Map<Expr, Lanes | undefined>;
}

export const fork = (s: Sample, active = s.active, weight = s.weight): Sample => ({
  env: new Map(s.env),
  active,
  weight,
  known: new Map(),
});

/**
 * Samples of a loop's iterations, each standing for its share of the trip count: the first two
 * where the lanes' counters differ (the second iteration may take other rows), the first where
 * they are the same (the lanes' addresses then move together from one iteration to the next).
 */
export function iterations(s: Stmt & { kind: 'for' }, x: Sample): Sample[] {
  const [from, to, step] = [s.from, s.to, s.step].map((e) => evaluate(e, x.env, x.known));
  if (!from || !step) {
    const y = fork(x);
    y.env.set(s.counter, undefined);
    return [y];
  }
  let trips: number | undefined;
  let uniform = true;
  const first = x.active.indexOf(1);
  for (let i = 0; i < LANES; i++) {
    if (!x.active[i]) continue;
    uniform &&= from[i] === from[first] && step[i] === step[first];
    if (to) trips = Math.max(trips ?? 0, Math.ceil(Math.max(0, to[i] - from[i]) / step[i]));
  }
  const taken = trips === undefined || uniform ? Math.min(1, trips ?? 1) : Math.min(2, trips);
  const out: Sample[] = [];
  for (let k = 0; k < taken; k++) {
    const counter = new Float64Array(LANES);
    const active = new Uint8Array(LANES);
    let any = false;
    for (let i = 0; i < LANES; i++) {
      counter[i] = from[i] + k * step[i];
      active[i] = x.active[i] && (!to || counter[i] < to[i]) ? 1 : 0;
      any ||= active[i] === 1;
    }
    if (!any) continue;
    const y = fork(x, active, (x.weight * (trips ?? 1)) / taken);
    y.env.set(s.counter, counter);
    out.push(y);
  }
  return out;
}
