/**
 * A synthetic sequence with something to learn, for any layer: the loss's first view (the
 * output's if the loss reads none) is the input x ~ N(0, 1); every other view of the loss is a fixed random map of x (per head) plus
 * noise, so the inner model can learn that map; views only the output reads are x plus noise
 * (or a linear map of x where their shape differs). Named in the `run` convention.
 */
import type { LayerSummary, Tensor, TensorInfo } from './tttc.ts';
import { normal, rng } from '../../core/random.ts';

export interface SequenceOptions {
  B: number;
  H: number;
  T: number;
  seed: number;
  map: 'linear' | 'nonlinear';
  noise: number;
  /** The per-token learning rate, when the spec takes one (`lr: token`). */
  lr: number;
}

/** Seeded normal samples: the same numbers for the same seed in every browser. */
function normals(seed: number): (std?: number) => number {
  const rand = rng(seed);
  return (std = 1) => normal(rand, std);
}

const width = (t: TensorInfo) => t.shape.reduce((a, b) => a * b, 1);

/** y[n] = Σ_m x[m] M[m, n] for a row-major [m, n] matrix. */
function times(x: Float64Array, M: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n);
  for (let i = 0; i < x.length; i++) for (let j = 0; j < n; j++) y[j] += x[i] * M[i * n + j];
  return y;
}

export function syntheticSequence(layer: LayerSummary, o: SequenceOptions): Map<string, Tensor> {
  const normal = normals(o.seed);
  const fill = (n: number, std: number) => Float64Array.from({ length: n }, () => normal(std));
  const { B, H, T } = o;
  // The input: the loss's first view, or the output's when the loss reads none.
  const input = layer.lossViews[0] ?? layer.outputViews[0];
  if (!input) throw new Error(`${layer.name} reads no per-token views, so there is no sequence to feed it`);
  const targets = layer.lossViews.slice(1);
  const outputViews = layer.outputViews.filter((v) => v !== input);
  const nx = width(input);
  // Per head: a hidden map for the nonlinear case, and one output map per other view.
  const hidden = Array.from({ length: H }, () => fill(nx * nx, 1 / Math.sqrt(nx)));
  const mapOf = (t: TensorInfo) => Array.from({ length: H }, () => fill(nx * width(t), 1 / Math.sqrt(nx)));
  const targetMaps = targets.map(mapOf);
  const outputMaps = outputViews.map((v) => (width(v) === nx ? undefined : mapOf(v)));

  const data = (t: TensorInfo) => new Float64Array(B * H * T * width(t));
  const x = data(input);
  const ys = targets.map(data);
  const qs = outputViews.map(data);
  for (let bh = 0; bh < B * H; bh++) {
    const h = bh % H;
    for (let t = 0; t < T; t++) {
      const row = bh * T + t;
      const xt = fill(nx, 1);
      x.set(xt, row * nx);
      const features = o.map === 'linear' ? xt : times(xt, hidden[h], nx).map((z) => Math.tanh(2 * z) * Math.SQRT2);
      targets.forEach((v, i) => {
        const n = width(v);
        const y = times(features, targetMaps[i][h], n).map((z) => z + normal(o.noise));
        ys[i].set(y, row * n);
      });
      outputViews.forEach((v, i) => {
        const n = width(v);
        const maps = outputMaps[i];
        const q = maps ? times(xt, maps[h], n) : xt.slice();
        qs[i].set(
          q.map((z) => z + normal(o.noise)),
          row * n,
        );
      });
    }
  }

  const named = new Map<string, Tensor>();
  const perToken = (t: TensorInfo, d: Float64Array) => named.set(t.name, { shape: [B, H, T, ...t.shape], data: d });
  perToken(input, x);
  targets.forEach((v, i) => perToken(v, ys[i]));
  outputViews.forEach((v, i) => perToken(v, qs[i]));
  if (layer.lr.kind === 'token') named.set('lr', { shape: [B, H, T], data: new Float64Array(B * H * T).fill(o.lr) });
  if (layer.scale.kind === 'position')
    named.set('scale', { shape: [layer.K], data: new Float64Array(layer.K).fill(1) });
  for (const p of layer.params) named.set(`param.${p.name}`, { shape: [H, ...p.shape], data: fill(H * width(p), 0.5) });
  for (const s of layer.states) {
    // Matrices as a layer's weights usually start (std 1/√fan-in); vectors and scalars at 0.5.
    const std = s.shape.length === 2 ? 1 / Math.sqrt(s.shape[0]) : 0.5;
    named.set(`state.${s.name}`, { shape: [B, H, ...s.shape], data: fill(B * H * width(s), std) });
  }
  return named;
}
