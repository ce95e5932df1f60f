/**
 * An independent f64 implementation of the update rules of semantics.md §6 that runs each rule's
 * per-token recurrence literally, token after token:
 *
 *   g_t = ∇ loss(θ; views_t) at the mini-batch's start θ,  u = η_t u + lr_t g_t,  θ_t = d_t θ_{t−1} − u
 *
 * with the read orders, orthogonalisation (Newton–Schulz written out on plain arrays here) and the
 * spec's commit transforms at each mini-batch's end. It uses the compiler only to evaluate the
 * spec's loss, output and commit expressions on one token (lowering and autodiff), never its
 * mini-batch program.
 */
import type { CheckedLayer } from '../../compiler/check/checked.ts';
import { grad } from '../../compiler/autodiff/vjp.ts';
import { execute } from '../../compiler/ir/execute.ts';
import { Builder, type Program, size } from '../../compiler/ir/ir.ts';
import { Lowering } from '../../compiler/ir/lower.ts';
import type { Tensor } from '../../core/tensor.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, optimizerState } from '../../core/update-rule.ts';

type Vec = Float64Array;

/** Per-token programs: the loss's gradient at `at.S`, the output with `read.S`, the commits of `end.S`. */
function tokenPrograms(L: CheckedLayer): { gradient: Program; output: Program; commit: Program } {
  const g = new Builder();
  const at = new Map(L.states.map((s) => [s.name, g.input(`at.${s.name}`, s.shape)]));
  const gl = new Lowering(L, g, 1, { value: (s) => ({ id: at.get(s)!, rows: false }) });
  const loss = g.sum(gl.ops.lift(gl.viewFn(L.loss)), [0]);
  const grads = grad(g, loss, [...at.values()]);
  const gradient = g.build(L.states.map((s, i) => ({ name: s.name, node: grads[i] })));

  const o = new Builder();
  const ol = new Lowering(L, o, 1, {
    value: (s) => ({ id: o.input(`read.${s}`, L.states.find((t) => t.name === s)!.shape), rows: false }),
  });
  const output = o.build([{ name: 'output', node: ol.ops.lift(ol.viewFn(L.output)) }]);

  const c = new Builder();
  const cl = new Lowering(L, c, 1, {
    value: (s) => ({ id: c.input(`end.${s}`, L.states.find((t) => t.name === s)!.shape), rows: false }),
  });
  const ports = [...L.update.rules.commits].map(([s, e]) => ({
    name: s,
    node: c.expand(cl.expr(e, new Map()).id, L.states.find((t) => t.name === s)!.shape),
  }));
  return { gradient, output, commit: c.build(ports) };
}

function matmul(a: Vec, b: Vec, m: number, k: number, n: number): Vec {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) out[i * n + j] += a[i * k + p] * b[p * n + j];
  return out;
}

function transposed(a: Vec, m: number, n: number): Vec {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j];
  return out;
}

/** Muon's quintic Newton–Schulz iteration, as published (coefficients 3.4445, −4.7750, 2.0315). */
export function newtonSchulzPlain(u: Vec, rows: number, cols: number, steps: number): Vec {
  const norm = Math.sqrt(u.reduce((s, x) => s + x * x, 0));
  let x: Vec = u.map((v) => v / (norm + 1e-7));
  const tall = rows > cols;
  let [m, n] = [rows, cols];
  if (tall) {
    x = transposed(x, rows, cols);
    [m, n] = [cols, rows];
  }
  for (let s = 0; s < steps; s++) {
    const a = matmul(x, transposed(x, m, n), m, n, m);
    const a2 = matmul(a, a, m, m, m);
    const poly = a.map((v, i) => -4.775 * v + 2.0315 * a2[i]);
    const px = matmul(poly, x, m, m, n);
    x = x.map((v, i) => 3.4445 * v + px[i]);
  }
  return tall ? transposed(x, m, n) : x;
}

/** Runs a call in the `run` convention; returns the same named tensors as a backend. */
export function runRecurrence(L: CheckedLayer, named: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const { gradient, output, commit } = tokenPrograms(L);
  const rule = L.update.rules;
  const K = L.minibatch.size;
  const first = named.get(L.views[0].name)!;
  const [B, H, T] = first.shape;
  const start = named.get('start')?.data[0] ?? 0;
  const outShape = output.nodes[output.outputs[0].node].shape.slice(1);
  const outWidth = size(outShape);
  const out = new Float64Array(B * H * T * outWidth);
  const result = new Map<string, Tensor>();
  const results = (name: string, shape: readonly number[]) => {
    if (!result.has(name)) result.set(name, { shape: [B, H, ...shape], data: new Float64Array(B * H * size(shape)) });
    return result.get(name)!.data;
  };
  const perToken = (name: string, bh: number, t: number) => named.get(name)!.data[bh * T + t];
  const factor = (spec: typeof rule.decay, name: string, bh: number, t: number, none: number) =>
    !spec ? none : spec.kind === 'constant' ? spec.value : perToken(name, bh, t);

  for (let bh = 0; bh < B * H; bh++) {
    const h = bh % H;
    const params = new Map<string, Tensor>();
    for (const p of L.params) {
      const n = size(p.shape);
      params.set(`param.${p.name}`, {
        shape: p.shape,
        data: named.get(`param.${p.name}`)!.data.slice(h * n, (h + 1) * n),
      });
    }
    const read = (name: string, s: { name: string; shape: readonly number[] }): Vec => {
      const t = named.get(name);
      const n = size(s.shape);
      if (!t) return new Float64Array(n);
      const block = t.shape.length === s.shape.length + 1 ? h : bh;
      return t.data.slice(block * n, (block + 1) * n);
    };
    let theta0 = new Map(L.states.map((s) => [s.name, read(`state.${s.name}`, s)]));
    const running = new Map(
      L.states.map((s) => [s.name, theta0.get(s.name)!.map((x, i) => x - read(`accum.${s.name}`, s)[i])]),
    );
    const u = new Map(L.states.map((s) => [s.name, read(optimizerState(s.name), s)]));
    const views = (t: number) => {
      const m = new Map(params);
      for (const v of L.views) {
        const w = size(v.shape);
        m.set(`view.${v.name}`, {
          shape: [1, ...v.shape],
          data: named.get(v.name)!.data.slice((bh * T + t) * w, (bh * T + t + 1) * w),
        });
      }
      return m;
    };
    const readOut = (t: number, states: Map<string, Vec>) => {
      const m = views(t);
      for (const s of L.states) m.set(`read.${s.name}`, { shape: s.shape, data: states.get(s.name)! });
      out.set(execute(output, m).get('output')!.data, (bh * T + t) * outWidth);
    };
    const committed = (): Map<string, Vec> => {
      const c = new Map<string, Vec>();
      for (const s of L.states) {
        const steps = rule.orthogonalize.get(s.name);
        const end = running.get(s.name)!;
        if (steps === undefined) c.set(s.name, end);
        else {
          const start0 = theta0.get(s.name)!;
          const ortho = newtonSchulzPlain(
            start0.map((x, i) => x - end[i]),
            s.shape[0],
            s.shape[1],
            steps,
          );
          c.set(
            s.name,
            start0.map((x, i) => x - ortho[i]),
          );
        }
      }
      if (rule.commits.size === 0) return c;
      const m = new Map(params);
      for (const s of L.states) m.set(`end.${s.name}`, { shape: s.shape, data: c.get(s.name)! });
      const transformed = execute(commit, m);
      for (const [s, t] of transformed) c.set(s, t.data);
      return c;
    };
    let pending: number[] = [];
    for (let t = 0; t < T; t++) {
      const position = (start + t) % K;
      const grads = execute(
        gradient,
        new Map([
          ...views(t),
          ...L.states.map((s) => [`at.${s.name}`, { shape: s.shape, data: theta0.get(s.name)! }] as const),
        ]),
      );
      const d = factor(rule.decay, DECAY_INPUT, bh, t, 1);
      const eta = factor(rule.momentum, MOMENTUM_INPUT, bh, t, 0);
      for (const s of L.states) {
        const rate = rule.rates.get(s.name)!;
        const lr = rate.spec.kind === 'constant' ? rate.spec.value : perToken(rate.input, bh, t);
        const g = grads.get(s.name)!.data;
        const us = u.get(s.name)!;
        const th = running.get(s.name)!;
        for (let i = 0; i < us.length; i++) {
          us[i] = eta * us[i] + lr * g[i];
          th[i] = d * th[i] - us[i];
        }
      }
      if (rule.read === 'causal') readOut(t, running);
      else if (rule.read === 'before') readOut(t, theta0);
      else pending.push(t);
      const ends = position === K - 1;
      if (ends || t === T - 1) {
        const c = committed();
        for (const p of pending) readOut(p, c);
        pending = [];
        if (ends) {
          theta0 = c;
          for (const s of L.states) running.set(s.name, c.get(s.name)!.slice());
        }
      }
    }
    for (const s of L.states) {
      const n = size(s.shape);
      results(`state.${s.name}`, s.shape).set(theta0.get(s.name)!, bh * n);
      results(`accum.${s.name}`, s.shape).set(
        theta0.get(s.name)!.map((x, i) => x - running.get(s.name)![i]),
        bh * n,
      );
      if (rule.momentum) results(optimizerState(s.name), s.shape).set(u.get(s.name)!, bh * n);
    }
  }
  result.set('output', { shape: [B, H, T, ...outShape], data: out });
  return result;
}
