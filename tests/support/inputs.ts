/** Random inner-loop inputs in the `run` convention for any compiled spec. */
import type { ChunkProgram } from '../../compiler/dualform/derive.ts';
import { size } from '../../compiler/ir/ir.ts';
import { kernelSignature } from '../../compiler/signature.ts';
import { runKey } from '../../core/mangle.ts';
import type { Tensor } from '../../core/tensor.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, optimizerState } from '../../core/update-rule.ts';
import { normals, rng, uniforms } from './random.ts';

export interface InputOptions {
  B: number;
  H: number;
  T: number;
  start?: number;
  /** Give a nonzero carried accumulator. */
  accum?: boolean;
  /** Give states as [H, ...] (broadcast over B) instead of [B, H, ...]. */
  sharedState?: boolean;
  /**
   * A factor on the learning rates (`lr` and a rule's per-state rates): below 1 keeps a deep inner
   * model's state from growing until its float32 derivatives overflow (silu's exp past 88).
   */
  rates?: number;
  seed: number;
}

export function randomInputs(chunk: ChunkProgram, o: InputOptions): Map<string, Tensor> {
  const r = rng(o.seed);
  const L = chunk.layer;
  const { B, H, T } = o;
  const named = new Map<string, Tensor>();
  const put = (name: string, shape: number[], data: Float64Array) => named.set(name, { shape, data });
  const key = (role: 'view' | 'param' | 'state' | 'accum', name: string) => runKey({ role, name });
  for (const v of L.views) put(key('view', v.name), [B, H, T, ...v.shape], normals(r, B * H * T * size(v.shape)));
  const rates = o.rates ?? 1;
  const rate = (n: number) => uniforms(r, n, 0.01, 0.2).map((x) => rates * x);
  if (L.update.lr.kind === 'token') put('lr', [B, H, T], rate(B * H * T));
  if (L.update.scale.kind === 'position') put('scale', [chunk.K], uniforms(r, chunk.K, 0.1, 1));
  for (const p of L.params) put(key('param', p.name), [H, ...p.shape], normals(r, H * size(p.shape), 0.5));
  for (const s of L.states) {
    const shape = o.sharedState ? [H, ...s.shape] : [B, H, ...s.shape];
    const fanIn = s.shape.length === 2 ? s.shape[0] : 4;
    put(key('state', s.name), shape, normals(r, size(shape), 1 / Math.sqrt(fanIn)));
    if (o.accum)
      put(key('accum', s.name), [B, H, ...s.shape], normals(r, B * H * size(s.shape), 0.05 / Math.sqrt(fanIn)));
  }
  const rule = kernelSignature(L, chunk).rule;
  if (rule) {
    for (const n of rule.tokenInputs) {
      const factor = n === DECAY_INPUT || n === MOMENTUM_INPUT;
      put(n, [B, H, T], factor ? uniforms(r, B * H * T, 0.3, 0.95) : rate(B * H * T));
    }
    for (const s of rule.optimizerStates) {
      const shape = L.states.find((t) => t.name === s)!.shape;
      if (o.accum) put(optimizerState(s), [B, H, ...shape], normals(r, B * H * size(shape), 0.05));
    }
  }
  if (o.start) put('start', [], Float64Array.of(o.start));
  return named;
}

/** Tokens [from, to) of every per-token tensor (views and lr); everything else as is. */
export function sliceTokens(
  chunk: ChunkProgram,
  named: ReadonlyMap<string, Tensor>,
  from: number,
  to: number,
): Map<string, Tensor> {
  const out = new Map(named);
  const sig = kernelSignature(chunk.layer, chunk);
  const perToken = [...sig.inputs.filter((p) => p.lead.includes('T')).map(runKey), ...(sig.rule?.tokenInputs ?? [])];
  for (const name of perToken) {
    const t = named.get(name)!;
    const [B, H, T, ...rest] = t.shape;
    const w = size(rest);
    const data = new Float64Array(B * H * (to - from) * w);
    for (let bh = 0; bh < B * H; bh++)
      data.set(t.data.subarray((bh * T + from) * w, (bh * T + to) * w), bh * (to - from) * w);
    out.set(name, { shape: [B, H, to - from, ...rest], data });
  }
  return out;
}
