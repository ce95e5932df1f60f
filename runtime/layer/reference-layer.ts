/** The whole layer in float64 on the CPU: the reference every other device is held to. */
import { type KernelSignature, viewPorts } from '../../core/signature.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { LayerConfig, ViewName } from './config.ts';
import { geluTanh, joinHeads, layerNormRows, linear, sigmoid, splitHeads } from './f64-ops.ts';
import { type InnerLoopBackend, type LayerParts, POST_NORM_EPS, type Projected, SequenceLayer } from './layer.ts';
import { applyRope, type RopeTable, ropeTable } from './rope.ts';
import { ruleGateScale } from './rule-gates.ts';
import { type LayerOptions, type LayerWeights, loadLayerWeights, type WeightsSource } from './weights.ts';

const ROTATED: ReadonlySet<string> = new Set<ViewName>(['q', 'k']);

export class ReferenceParts implements LayerParts {
  private readonly rope: RopeTable;

  constructor(
    private readonly signature: KernelSignature,
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
    for (const v of viewPorts(this.signature)) {
      const y = linear(x.data, rows, projections[v.name as ViewName].data, C);
      if (ROTATED.has(v.name)) {
        for (let r = 0; r < rows; r++) {
          const p = (offset + (r % T)) % K;
          for (let h = 0; h < H; h++) applyRope(this.rope, y, (r * H + h) * D, p);
        }
      }
      views.set(v.name, { shape: [B, H, T, D], data: splitHeads(y, B, T, H, D) });
    }
    const { lrWeight, lrBias, ruleGates } = this.weights;
    const { baseLr } = this.config;
    const lr = lrWeight && lrBias && this.gate(x, lrWeight, lrBias, baseLr / D);
    const tokens = new Map(
      [...ruleGates].map(([input, g]) => [input, this.gate(x, g.weight, g.bias, ruleGateScale(input, baseLr, D))]),
    );
    return { views, lr, tokens, finish: async (inner) => this.finish(x, inner), discard: () => {} };
  }

  /** A per-token gate [B, H, T] = scale · σ(x·w_h + c_h): the lr, and a rule's inputs (rule-gates.ts). */
  private gate(x: Tensor, weight: Tensor, bias: Tensor, scale: number): Tensor {
    const { heads: H } = this.config;
    const [B, T] = x.shape;
    const z = linear(x.data, B * T, weight.data, H);
    const out = new Float64Array(B * H * T);
    for (let b = 0; b < B; b++)
      for (let t = 0; t < T; t++)
        for (let h = 0; h < H; h++) out[(b * H + h) * T + t] = scale * sigmoid(z[(b * T + t) * H + h] + bias.data[h]);
    return { shape: [B, H, T], data: out };
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

/** The layer's parts in f64 around an inner loop (cli/link-layer.ts gives the reference executor's). */
export function createReferenceLayer(
  signature: KernelSignature,
  config: LayerConfig,
  weights: LayerWeights,
  innerLoop: InnerLoopBackend,
): SequenceLayer {
  return new SequenceLayer(signature, config, weights, new ReferenceParts(signature, config, weights), innerLoop);
}

export async function loadReferenceLayer(
  signature: KernelSignature,
  source: WeightsSource,
  innerLoop: InnerLoopBackend,
  options: LayerOptions = {},
): Promise<SequenceLayer> {
  const { config, weights } = await loadLayerWeights(source, signature, options);
  return createReferenceLayer(signature, config, weights, innerLoop);
}
