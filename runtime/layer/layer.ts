/**
 * The TTT sequence layer (semantics.md §2) with prefill and decode. This file owns what every
 * device shares: checking inputs, the position bookkeeping of the cache, scale_i, and the call
 * into the inner loop; the projections and the other per-token arithmetic are a device's
 * `LayerParts` (f64 on the CPU in reference-layer.ts, f32 kernels in webgpu-layer.ts), and the
 * inner loop is any `InnerLoopBackend`.
 */
import { type KernelSignature, statePorts } from '../../core/signature.ts';
import { asF64, type Tensor, type TensorInput } from '../../core/tensor.ts';
import { DECAY_INPUT, MOMENTUM_INPUT } from '../../core/update-rule.ts';
import type { InnerLoopInputs, InnerLoopOutputs } from '../inner-loop.ts';
import { type CacheLayout, LayerCache } from './cache.ts';
import type { LayerConfig } from './config.ts';
import type { LayerWeights } from './weights.ts';

/** Runs the inner loop (§1) in the `run` convention of runtime/inner-loop.ts. */
export interface InnerLoopBackend {
  run(inputs: InnerLoopInputs): Promise<InnerLoopOutputs>;
}

/** post_norm's epsilon in the published layer. */
export const POST_NORM_EPS = 1e-6;

/** The per-token work before and after the inner loop, on one device. */
export interface LayerParts {
  /** Projections, RoPE (the first token at mini-batch position `offset`) and the lr gate of x [B, T, C]. */
  project(x: Tensor, offset: number): Promise<Projected>;
  /** Frees device memory; the layer is unusable afterwards. */
  destroy?(): void;
}

export interface Projected {
  /** View name → [B, H, T, D]. */
  views: Map<string, Tensor>;
  /** [B, H, T], when the spec's lr is per token. */
  lr?: Tensor;
  /** [B, H, T] each: the update rule's per-token inputs (runtime/layer/rule-gates.ts), by name. */
  tokens?: Map<string, Tensor>;
  /** Heads joined, post-norm, gate and output projection: inner-loop output [B, H, T, D] → [B, T, C]. */
  finish(inner: Tensor): Promise<Tensor>;
  /** Releases what `finish` would have used, when the inner loop fails. */
  discard(): void;
}

/** Milliseconds spent in each phase of the last call. */
export interface LayerTimings {
  project: number;
  innerLoop: number;
  finish: number;
}

export class LayerInputError extends Error {}

const showShape = (s: readonly number[]) => `[${s.join(', ')}]`;

export class SequenceLayer {
  readonly cacheLayout: CacheLayout;
  lastTimings: LayerTimings = { project: 0, innerLoop: 0, finish: 0 };
  private readonly scale: Tensor | undefined;
  /** Caches a call is working on: a second call with the same cache would read a stale state. */
  private readonly busy = new WeakSet<LayerCache>();

  constructor(
    readonly signature: KernelSignature,
    readonly config: LayerConfig,
    readonly weights: LayerWeights,
    private readonly parts: LayerParts,
    private readonly innerLoop: InnerLoopBackend,
  ) {
    this.cacheLayout = {
      heads: config.heads,
      miniBatch: config.miniBatch,
      states: statePorts(signature).map((s) => ({ name: s.name, shape: s.shape })),
      optimizerStates: signature.rule?.optimizerStates ?? [],
    };
    this.scale = weights.tokenOffset && positionScale(weights.tokenOffset.data);
  }

  /** A cache for `batch` sequences before their first token. */
  createCache(batch: number): LayerCache {
    if (!Number.isInteger(batch) || batch < 1)
      throw new LayerInputError(`a cache needs a positive batch size, got ${batch}`);
    return LayerCache.fresh(this.cacheLayout, batch, this.weights.states);
  }

  /**
   * The layer over x [B, T, C], T ≥ 1, continuing from `cache` (which it advances) or from the
   * initial state. A failed call leaves the cache as it was.
   */
  async forward(x: TensorInput, cache?: LayerCache): Promise<{ output: Tensor; cache: LayerCache }> {
    return this.call(asF64(x), cache, 'forward');
  }

  /** One token per sequence, x [B, 1, C] or [B, C]; the output has x's shape. */
  async step(input: TensorInput, cache: LayerCache): Promise<Tensor> {
    const x = asF64(input);
    const C = this.config.width;
    if (x.shape.length === 2) {
      const { output } = await this.call({ shape: [x.shape[0], 1, x.shape[1]], data: x.data }, cache, 'step');
      return { shape: [x.shape[0], C], data: output.data };
    }
    if (x.shape.length !== 3 || x.shape[1] !== 1)
      throw new LayerInputError(
        `step takes one token per sequence, [B, 1, ${C}] or [B, ${C}]; got ${showShape(x.shape)}`,
      );
    return (await this.call(x, cache, 'step')).output;
  }

  /** x [B, T, C] one token at a time through `step`: the decode path, same result as `forward`. */
  async decode(input: TensorInput, cache?: LayerCache): Promise<{ output: Tensor; cache: LayerCache }> {
    const x = asF64(input);
    const [B, T] = this.checkInput(x, 'decode');
    const C = this.config.width;
    const c = cache ?? this.createCache(B);
    const output = new Float64Array(B * T * C);
    const token = new Float64Array(B * C);
    for (let t = 0; t < T; t++) {
      for (let b = 0; b < B; b++) token.set(x.data.subarray((b * T + t) * C, (b * T + t + 1) * C), b * C);
      const y = await this.step({ shape: [B, C], data: token }, c);
      for (let b = 0; b < B; b++) output.set(y.data.subarray(b * C, (b + 1) * C), (b * T + t) * C);
    }
    return { output: { shape: [B, T, C], data: output }, cache: c };
  }

  /**
   * The update rule's per-token inputs [B, H, T] its gates give for x [B, T, C] (runtime/layer/
   * rule-gates.ts), by name: what a call over x feeds the inner loop. Empty without such inputs.
   */
  async ruleInputs(input: TensorInput): Promise<Map<string, Tensor>> {
    const x = asF64(input);
    this.checkInput(x, 'ruleInputs');
    const projected = await this.parts.project(x, 0);
    projected.discard();
    return projected.tokens ?? new Map();
  }

  destroy(): void {
    this.parts.destroy?.();
  }

  private async call(
    x: Tensor,
    cache: LayerCache | undefined,
    what: string,
  ): Promise<{ output: Tensor; cache: LayerCache }> {
    const [B, T] = this.checkInput(x, what);
    const c = cache ?? this.createCache(B);
    this.checkCache(c, B);
    this.busy.add(c);
    try {
      return { output: await this.run(x, B, T, c), cache: c };
    } finally {
      this.busy.delete(c);
    }
  }

  private async run(x: Tensor, B: number, T: number, cache: LayerCache): Promise<Tensor> {
    const { heads: H } = this.config;
    const t0 = performance.now();
    const projected = await this.parts.project(x, cache.offset);
    const t1 = performance.now();
    let inner: InnerLoopOutputs;
    try {
      checkFactors(projected.tokens);
      inner = await this.innerLoop.run({
        B,
        H,
        T,
        start: cache.offset,
        views: projected.views,
        lr: projected.lr,
        scale: this.scale,
        params: this.weights.params,
        states: new Map(cache.states),
        accums: new Map(cache.accums),
        ...(this.signature.rule && { tokens: projected.tokens, opts: new Map(cache.opts) }),
      });
    } catch (e) {
      projected.discard();
      throw e;
    }
    const t2 = performance.now();
    const output = await projected.finish(inner.output);
    this.lastTimings = { project: t1 - t0, innerLoop: t2 - t1, finish: performance.now() - t2 };
    cache.advance(inner.states, inner.accums, inner.opts, T);
    return output;
  }

  private checkInput(x: Tensor, what: string): [number, number] {
    const C = this.config.width;
    if (x.shape.length !== 3)
      throw new LayerInputError(`${what}: input has shape ${showShape(x.shape)}, expected [B, T, ${C}]`);
    const [B, T, width] = x.shape;
    if (width !== C)
      throw new LayerInputError(
        `${what}: input has shape ${showShape(x.shape)}, expected [B, T, ${C}] (the layer's width is ${C})`,
      );
    if (B < 1) throw new LayerInputError(`${what}: input has shape ${showShape(x.shape)}: no sequences`);
    if (T < 1)
      throw new LayerInputError(
        `${what}: input has shape ${showShape(x.shape)}: an empty sequence (T must be at least 1)`,
      );
    if (x.data.length !== B * T * C)
      throw new LayerInputError(
        `${what}: input of shape ${showShape(x.shape)} has ${x.data.length} values, expected ${B * T * C}`,
      );
    return [B, T];
  }

  private checkCache(cache: LayerCache, B: number): void {
    if (cache.batch !== B) throw new LayerInputError(`the cache holds ${cache.batch} sequences but the input has ${B}`);
    const ours = this.cacheLayout;
    const theirs = cache.layout;
    const same =
      theirs === ours ||
      (theirs.heads === ours.heads &&
        theirs.miniBatch === ours.miniBatch &&
        theirs.optimizerStates.join() === ours.optimizerStates.join() &&
        theirs.states.every(
          (s, i) => s.name === ours.states[i]?.name && showShape(s.shape) === showShape(ours.states[i].shape),
        ));
    if (!same)
      throw new LayerInputError(
        'the cache was made for a different layer (heads, mini-batch size, states or optimizer states differ)',
      );
    if (this.busy.has(cache))
      throw new LayerInputError('the cache is in use by another call that has not finished; await it first');
  }
}

/**
 * Decay and momentum enter the kernels through their logarithms (cumulative products), so a gate
 * that rounds to 0 (a logit below about −88 in f32, −745 in f64) would turn the call to NaN.
 */
function checkFactors(tokens: ReadonlyMap<string, Tensor> | undefined): void {
  for (const name of [DECAY_INPUT, MOMENTUM_INPUT]) {
    const t = tokens?.get(name);
    const bad = t?.data.findIndex((v) => !(v > 0 && Number.isFinite(v))) ?? -1;
    if (bad < 0) continue;
    const [, H, T] = t!.shape;
    const [b, h, i] = [Math.floor(bad / (H * T)), Math.floor(bad / T) % H, bad % T];
    throw new LayerInputError(
      `the ${name} gate gives ${t!.data[bad]} for sequence ${b}, head ${h}, token ${i} of the call; it must be positive (its logit is too far below zero)`,
    );
  }
}

/** scale_i = max(0, 1/(i+1) + offset_i), in f64 (the reference's token_eta agrees to the last bit). */
function positionScale(offset: Float64Array): Tensor {
  return { shape: [offset.length], data: Float64Array.from(offset, (o, i) => Math.max(0, 1 / (i + 1) + o)) };
}
