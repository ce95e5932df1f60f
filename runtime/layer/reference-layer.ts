/** The whole layer in float64 on the CPU: the reference every other device is held to. */
import type { Tensor } from '../../core/tensor.ts';
import type { Compiled } from '../../compiler/pipeline.ts';
import { runReference } from '../reference/inner-loop.ts';
import { type InnerLoopSignature, signatureOf } from '../signature.ts';
import type { LayerConfig, ViewName } from './config.ts';
import { geluTanh, joinHeads, layerNormRows, linear, sigmoid, splitHeads } from './f64-ops.ts';
import { type InnerLoopBackend, type LayerParts, POST_NORM_EPS, type Projected, SequenceLayer } from './layer.ts';
import { applyRope, type RopeTable, ropeTable } from './rope.ts';
import { type LayerOptions, type LayerWeights, loadLayerWeights, type WeightsSource } from './weights.ts';

/** The inner loop as the f64 reference executor runs it: the one backend that needs the compiled program. */
export function referenceInnerLoop(compiled: Compiled): InnerLoopBackend {
  return { run: async (inputs) => runReference(compiled.chunk, inputs) };
}

const ROTATED: ReadonlySet<string> = new Set<ViewName>(['q', 'k']);

export class ReferenceParts implements LayerParts {
  private readonly rope: RopeTable;

  constructor(
    private readonly signature: InnerLoopSignature,
    private readonly config: LayerConfig,
    private readonly weights: LayerWeights,
  ) {
    this.rope = ropeTable(config.headDim, config.miniBatch, config.ropeTheta);
  }

  async project(x: Tensor, offset: number): Promise<Projected> {
    const { width: C, heads: H, headDim: D, miniBatch: K } = this.config;
    const [B, T] = x.shape;
    const rows = B * T;
    const views = new Map<string, Tensor>();
    const { qProj, kProj, vProj } = this.weights;
    const projections: Record<ViewName, Tensor> = { q: qProj, k: kProj, v: vProj };
    for (const v of this.signature.views) {
      const y = linear(x.data, rows, projections[v.name as ViewName].data, C);
      if (ROTATED.has(v.name)) {
        for (let r = 0; r < rows; r++) {
          const p = (offset + (r % T)) % K;
          for (let h = 0; h < H; h++) applyRope(this.rope, y, (r * H + h) * D, p);
        }
      }
      views.set(v.name, { shape: [B, H, T, D], data: splitHeads(y, B, T, H, D) });
    }
    return { views, lr: this.learningRates(x), finish: async (inner) => this.finish(x, inner), discard: () => {} };
  }

  /** lr [B, H, T] = base_lr · σ(x·w_h + c_h) / D. */
  private learningRates(x: Tensor): Tensor | undefined {
    const { lrWeight, lrBias } = this.weights;
    if (!lrWeight || !lrBias) return undefined;
    const { heads: H, headDim: D, baseLr } = this.config;
    const [B, T] = x.shape;
    const z = linear(x.data, B * T, lrWeight.data, H);
    const lr = new Float64Array(B * H * T);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        for (let h = 0; h < H; h++)
          lr[(b * H + h) * T + t] = (baseLr * sigmoid(z[(b * T + t) * H + h] + lrBias.data[h])) / D;
    return { shape: [B, H, T], data: lr };
  }

  private finish(x: Tensor, inner: Tensor): Tensor {
    const { width: C, heads: H, headDim: D } = this.config;
    const [B, T] = x.shape;
    const rows = B * T;
    const y = joinHeads(inner.data, B, T, H, D);
    layerNormRows(y, C, this.weights.postNormWeight.data, this.weights.postNormBias.data, POST_NORM_EPS);
    if (this.config.useGate) {
      const g = linear(x.data, rows, this.weights.gProj!.data, C);
      for (let i = 0; i < y.length; i++) y[i] *= geluTanh(g[i]);
    }
    return { shape: [B, T, C], data: linear(y, rows, this.weights.oProj.data, C) };
  }
}

export interface ReferenceLayerOptions {
  /** The inner loop; the f64 reference executor when left out. */
  innerLoop?: InnerLoopBackend;
}

export function createReferenceLayer(
  compiled: Compiled,
  config: LayerConfig,
  weights: LayerWeights,
  options: ReferenceLayerOptions = {},
): SequenceLayer {
  const signature = signatureOf(compiled);
  return new SequenceLayer(
    signature,
    config,
    weights,
    new ReferenceParts(signature, config, weights),
    options.innerLoop ?? referenceInnerLoop(compiled),
  );
}

export async function loadReferenceLayer(
  compiled: Compiled,
  source: WeightsSource,
  options: LayerOptions & ReferenceLayerOptions = {},
): Promise<SequenceLayer> {
  const { config, weights } = await loadLayerWeights(source, signatureOf(compiled), options);
  return createReferenceLayer(compiled, config, weights, options);
}
