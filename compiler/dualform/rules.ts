/**
 * The mini-batch program of an update rule beyond plain sgd (semantics.md §6). Per state S, with
 * its rate lr_j, the retention d_j and the momentum η_j (each per token or constant) and every
 * gradient g_j taken at the mini-batch's start θ:
 *
 *   u_i = η_i u_{i−1} + lr_i g_i        θ_i = d_i θ_{i−1} − u_i
 *
 * Unrolled over a chunk of R rows from the running state P = θ_{p−1} and u = u_{p−1}:
 * θ_r = D_r P − b_r u − Σ_{j≤r} E_{rj} g_j, with D_r = Π_{k≤r} d_k, and, writing
 * M^d_{rm} = Π_{m<k≤r} d_k (lower-triangular), E = M^d ⊙ lrᵀ without momentum and
 * E = (M^d ⊙ maskᵀ)(M^η ⊙ lrᵀ), b = (M^d ⊙ maskᵀ) D^η with it. The products come from cumulative
 * sums of logarithms, so decay and momentum are positive. Masked rows have d = η = 1 and lr = 0
 * and their u leaves θ alone, so row R−1 holds the values after the chunk's last token.
 *
 * A state entering as `x @ S` keeps its dual form: x̄_r θ_r = D_r x̄_r P − b_r x̄_r u
 * − Σ_j E_{rj} (x̄_r · x_j) δ_j. Others get per-row copies from per-row gradients.
 *
 * Carried between chunks: `state.S` = θ (the mini-batch's start), `accum.S` = θ − θ_{p−1} and,
 * with momentum, `opt.S` = u_{p−1}. When the chunk ends the mini-batch (`commit` = 1, `keep` = 0)
 * the state becomes the committed one: θ_{K−1}, with the summed update U = θ − θ_{K−1} replaced by
 * its Newton–Schulz orthogonalisation where the rule asks, then the spec's commit transform.
 * Read orders: causal reads θ_r; before reads θ; after reads the committed state.
 */
import type { CheckedLayer } from '../check/checked.ts';
import type { RateSpec } from '../syntax/ast.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, optimizerState } from '../../core/update-rule.ts';
import { Builder, type Port, type Program, size } from '../ir/ir.ts';
import { Lowering } from '../ir/lower.ts';
import type { Val } from '../ir/rows.ts';
import type { FormChoice } from './forms.ts';
import { keySide } from './key-side.ts';
import { newtonSchulz } from './newton-schulz.ts';

/** Products of a per-row factor over ranges of rows of the chunk. */
interface Products {
  /** [R, R]: Π_{m<k≤r} of the factor at (r, m), for m ≤ r; 0 above the diagonal. */
  within: number;
  /** [R]: Π_{k≤r}. */
  upTo: number;
  /** [R]: Π_{k>m} up to the chunk's end. */
  after: number;
  /** []: the product over the whole chunk. */
  total: number;
}

/** Coefficients of one state's rule over the chunk (see the file's comment). */
interface Coefficients {
  E: number;
  /** Row r's factor of the carried u; undefined without momentum. */
  b?: number;
  /** Row R−1 of E, b; the end's u is c·u + Σ_j f_j g_j. */
  eLast: number;
  bLast?: number;
  fLast?: number;
  cLast?: number;
}

export function deriveRuleProgram(layer: CheckedLayer, forms: FormChoice[], R: number): Program {
  const rule = layer.update.rules;
  const b = new Builder();
  const formOf = new Map(forms.map((f) => [f.state, f.form]));
  const perRow = (s: string) => formOf.get(s) !== 'dual-matmul';
  const shapeOf = new Map(layer.states.map((s) => [s.name, s.shape]));

  const mask = b.input('mask', [R]);
  const commit = b.input('commit', []);
  const keep = b.input('keep', []);
  const state = new Map(layer.states.map((s) => [s.name, b.input(`state.${s.name}`, s.shape)]));
  const accum = new Map(layer.states.map((s) => [s.name, b.input(`accum.${s.name}`, s.shape)]));
  const opt = new Map(rule.momentum ? layer.states.map((s) => [s.name, b.input(optimizerState(s.name), s.shape)]) : []);
  const tril = b.tril(R);
  const ones = b.const(1, [R]);
  /** A row vector [R] down the columns of an [R, R] matrix: entry (r, j) is v_j. */
  const columns = (v: number) => b.expand(b.reshape(v, [1, R]), [R, R]);
  /** A row vector [R] broadcast over each row's `shape`. */
  const perRowScalar = (v: number, shape: readonly number[]) =>
    b.expand(b.reshape(v, [R, ...shape.map(() => 1)]), [R, ...shape]);
  const times = (scalar: number, t: number) => b.mul(b.expand(scalar, b.shape(t)), t);

  const perToken = (spec: RateSpec, name: string) =>
    spec.kind === 'token' ? b.mul(b.input(name, [R]), mask) : b.scale(mask, spec.value);
  /** log of a factor on each row; masked rows read 1, so their log is 0. */
  const logFactor = (spec: RateSpec, name: string) => {
    if (spec.kind === 'constant') return b.scale(mask, Math.log(spec.value));
    const x = b.add(b.mul(b.input(name, [R]), mask), b.sub(ones, mask));
    return b.mul(b.unary('log', x), mask);
  };
  const products = (log: number | undefined): Products => {
    if (log === undefined) return { within: tril, upTo: ones, after: ones, total: b.const(1) };
    const cumulative = b.reshape(b.matmul(tril, b.reshape(log, [R, 1])), [R]);
    const rowsOf = b.expand(b.reshape(cumulative, [R, 1]), [R, R]);
    const within = b.mul(b.unary('exp', b.mul(b.sub(rowsOf, columns(cumulative)), tril)), tril);
    const sum = b.sum(log, [0]);
    return {
      within,
      upTo: b.unary('exp', cumulative),
      after: b.unary('exp', b.sub(b.expand(sum, [R]), cumulative)),
      total: b.unary('exp', sum),
    };
  };
  b.origin = layer.update.span;
  const d = products(rule.decay && logFactor(rule.decay, DECAY_INPUT));
  const h = rule.momentum && products(logFactor(rule.momentum, MOMENTUM_INPUT));

  const coefficients = (s: string): Coefficients => {
    const rate = rule.rates.get(s)!;
    const lr = perToken(rate.spec, rate.input);
    if (!h) return { E: b.mul(d.within, columns(lr)), eLast: b.mul(d.after, lr) };
    const F = b.mul(h.within, columns(lr));
    const kept = b.mul(d.within, columns(mask));
    const afterKept = b.mul(d.after, mask);
    return {
      E: b.matmul(kept, F),
      b: b.reshape(b.matmul(kept, b.reshape(h.upTo, [R, 1])), [R]),
      eLast: b.reshape(b.matmul(b.reshape(afterKept, [1, R]), F), [R]),
      bLast: b.sum(b.mul(afterKept, h.upTo), [0]),
      fLast: b.mul(h.after, lr),
      cLast: h.total,
    };
  };
  const coef = new Map(layer.states.map((s) => [s.name, coefficients(s.name)]));

  const keys = keySide(layer, b, R, state, perRow, mask);
  /** Σ_j w_j g_j for a row vector w [R], in the state's shape. */
  const weightedGradient = (s: string, w: number): number => {
    const shape = shapeOf.get(s)!;
    const g = keys.rowGrads.get(s);
    if (g !== undefined) return b.reshape(b.matmul(b.reshape(w, [1, R]), b.reshape(g, [R, size(shape)])), shape);
    let total = b.const(0, shape);
    for (const k of keys.sites.get(s) ?? []) {
      const scaled = b.mul(k.x, b.expand(b.reshape(w, [R, 1]), b.shape(k.x)));
      total = b.add(total, b.matmul(b.mT(scaled), k.delta));
    }
    return total;
  };

  // The chunk's end: θ and u after its last token.
  b.origin = layer.update.span;
  const running = new Map(layer.states.map((s) => [s.name, b.sub(state.get(s.name)!, accum.get(s.name)!)]));
  // moved = θ − θ_end = A + (1 − D_{R−1}) P + b_{R−1} u + Σ_j E_{R−1,j} g_j, formed without the
  // cancellation of θ − θ_end, since the state is usually much larger than its change.
  const moved = new Map<string, number>();
  const ended = new Map<string, number>();
  const momentumOut = new Map<string, number>();
  for (const { name: s } of layer.states) {
    const c = coef.get(s)!;
    const retained = times(b.sub(b.const(1), d.total), running.get(s)!);
    let change = b.add(b.add(accum.get(s)!, retained), weightedGradient(s, c.eLast));
    if (h) {
      change = b.add(change, times(c.bLast!, opt.get(s)!));
      momentumOut.set(s, b.add(times(c.cLast!, opt.get(s)!), weightedGradient(s, c.fLast!)));
    }
    moved.set(s, change);
    ended.set(s, b.sub(state.get(s)!, change));
  }

  // The committed state: orthogonalised summed update, then the spec's transform.
  const orthogonal = new Map<string, number>();
  for (const { name: s } of layer.states) {
    const steps = rule.orthogonalize.get(s);
    const start = state.get(s)!;
    const end = ended.get(s)!;
    orthogonal.set(s, steps === undefined ? end : b.sub(start, newtonSchulz(b, moved.get(s)!, steps)));
  }
  const transform = new Lowering(layer, b, R, { value: (s) => ({ id: orthogonal.get(s)!, rows: false }) });
  const committed = new Map<string, number>();
  for (const { name: s } of layer.states) {
    const e = rule.commits.get(s);
    if (!e) {
      committed.set(s, orthogonal.get(s)!);
      continue;
    }
    b.origin = e.span;
    const v = transform.expr(e, new Map());
    committed.set(s, b.expand(v.id, shapeOf.get(s)!));
  }

  // Read-out.
  const rowState = (s: string): number => {
    const shape = shapeOf.get(s)!;
    const rowsShape = [R, ...shape];
    const c = coef.get(s)!;
    const g = keys.rowGrads.get(s) ?? b.const(0, rowsShape);
    const fromGradients = b.reshape(b.matmul(c.E, b.reshape(g, [R, size(shape)])), rowsShape);
    let rows = b.sub(b.mul(perRowScalar(d.upTo, shape), b.expand(running.get(s)!, rowsShape)), fromGradients);
    if (h) rows = b.sub(rows, b.mul(perRowScalar(c.b!, shape), b.expand(opt.get(s)!, rowsShape)));
    return rows;
  };
  const readState = (s: string): Val => {
    if (rule.read === 'before') return { id: state.get(s)!, rows: false };
    if (rule.read === 'after') return { id: committed.get(s)!, rows: false };
    return perRow(s) ? { id: rowState(s), rows: true } : { id: state.get(s)!, rows: false };
  };
  const query: Lowering = new Lowering(layer, b, R, {
    value: readState,
    matmul: (s, x): Val | undefined => {
      if (rule.read !== 'causal' || perRow(s)) return undefined;
      const c = coef.get(s)!;
      const xq = query.ops.lift(x);
      const base = b.matmul(xq, running.get(s)!);
      const shape = b.shape(base).slice(1);
      let value = b.mul(perRowScalar(d.upTo, shape), base);
      if (h) value = b.sub(value, b.mul(perRowScalar(c.b!, shape), b.matmul(xq, opt.get(s)!)));
      for (const k of keys.sites.get(s)!) {
        const attention = b.mul(c.E, b.matmul(xq, b.mT(k.x)));
        value = b.sub(value, b.matmul(attention, k.delta));
      }
      return { id: value, rows: true };
    },
  });
  b.origin = layer.output.span;
  const output = query.ops.lift(query.viewFn(layer.output));

  b.origin = layer.update.span;
  const outputs: Port[] = [{ name: 'output', node: output }];
  for (const { name: s } of layer.states) {
    const start = state.get(s)!;
    const next = b.add(times(keep, start), times(commit, committed.get(s)!));
    outputs.push({ name: `state.${s}`, node: next });
    outputs.push({ name: `accum.${s}`, node: times(keep, moved.get(s)!) });
    if (h) outputs.push({ name: optimizerState(s), node: momentumOut.get(s)! });
  }
  return b.build(outputs);
}
