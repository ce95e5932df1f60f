/** The reference backend: the derived mini-batch program run chunk by chunk in f64. */
import type { ChunkProgram } from '../../compiler/dualform/derive.ts';
import { execute } from '../../compiler/ir/execute.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { optimizerState } from '../../core/update-rule.ts';
import { chunks, InputError, type InnerLoopInputs, type InnerLoopOutputs } from '../inner-loop.ts';

/** The `bh`-th block of `block` elements. */
const slice = (t: Tensor, bh: number, block: number) => t.data.subarray(bh * block, (bh + 1) * block);

/** The factor the state takes its accumulator with when a mini-batch ends: scale_{K-1}. */
function commitScale(chunk: ChunkProgram, scale: ArrayLike<number> | undefined): number {
  const spec = chunk.layer.update.scale;
  if (spec.kind === 'position') return scale![chunk.K - 1];
  return spec.kind === 'constant' ? spec.value : 1;
}

export function runReference(chunk: ChunkProgram, inp: InnerLoopInputs): InnerLoopOutputs {
  const { B, H, T, start } = inp;
  const K = chunk.K;
  const L = chunk.layer;
  const outShape = chunk.program.nodes[chunk.program.outputs[0].node].shape.slice(1);
  const outWidth = size(outShape);
  const output: Tensor = { shape: [B, H, T, ...outShape], data: new Float64Array(B * H * T * outWidth) };
  const states = new Map(
    L.states.map((s) => [s.name, { shape: [B, H, ...s.shape], data: new Float64Array(B * H * size(s.shape)) }]),
  );
  const accums = new Map(
    L.states.map((s) => [s.name, { shape: [B, H, ...s.shape], data: new Float64Array(B * H * size(s.shape)) }]),
  );
  const R = chunk.rows;
  if (L.update.rules.read === 'after' && R < K)
    throw new InputError(
      `read order 'after' needs the whole mini-batch in one chunk: this program has ${R} rows, the mini-batch ${K}`,
    );
  const plan = chunks(start, T, K, R);
  const opts = new Map(
    [...(inp.opts ?? [])].map(([s, t]) => [s, { shape: t.shape, data: new Float64Array(t.data.length) }]),
  );
  const scale = inp.scale?.data;

  for (let bh = 0; bh < B * H; bh++) {
    const h = bh % H;
    const named = new Map<string, Tensor>();
    for (const p of L.params)
      named.set(`param.${p.name}`, { shape: p.shape, data: slice(inp.params.get(p.name)!, h, size(p.shape)) });
    for (const s of L.states) {
      named.set(`state.${s.name}`, { shape: s.shape, data: slice(inp.states.get(s.name)!, bh, size(s.shape)).slice() });
      named.set(`accum.${s.name}`, { shape: s.shape, data: slice(inp.accums.get(s.name)!, bh, size(s.shape)).slice() });
    }
    for (const [s, t] of inp.opts ?? [])
      named.set(optimizerState(s), { shape: t.shape.slice(2), data: slice(t, bh, size(t.shape.slice(2))).slice() });
    for (const c of plan) {
      const mask = new Float64Array(R);
      mask.fill(1, 0, c.count);
      named.set('mask', { shape: [R], data: mask });
      if (scale) {
        // Each row's own scale_i; rows past the chunk's tokens are masked and read 0.
        const rows = new Float64Array(R);
        rows.set(scale.subarray(c.position, c.position + c.count));
        named.set('scale', { shape: [R], data: rows });
      }
      named.set('commit', { shape: [], data: Float64Array.of(c.ends ? commitScale(chunk, scale) : 0) });
      named.set('keep', { shape: [], data: Float64Array.of(c.ends ? 0 : 1) });
      for (const v of L.views) {
        const w = size(v.shape);
        const rows = new Float64Array(R * w);
        const src = slice(inp.views.get(v.name)!, bh, T * w);
        rows.set(src.subarray(c.token * w, (c.token + c.count) * w));
        named.set(`view.${v.name}`, { shape: [R, ...v.shape], data: rows });
      }
      const perToken = new Map([...(inp.lr ? [['lr', inp.lr] as const] : []), ...(inp.tokens ?? [])]);
      for (const [name, t] of perToken) {
        const rows = new Float64Array(R);
        rows.set(slice(t, bh, T).subarray(c.token, c.token + c.count));
        named.set(name, { shape: [R], data: rows });
      }
      const result = execute(chunk.program, named);
      const out = result.get('output')!.data;
      output.data.set(out.subarray(0, c.count * outWidth), (bh * T + c.token) * outWidth);
      for (const s of L.states) {
        named.set(`state.${s.name}`, result.get(`state.${s.name}`)!);
        named.set(`accum.${s.name}`, result.get(`accum.${s.name}`)!);
      }
      for (const s of opts.keys()) named.set(optimizerState(s), result.get(optimizerState(s))!);
    }
    for (const s of L.states) {
      const n = size(s.shape);
      states.get(s.name)!.data.set(named.get(`state.${s.name}`)!.data, bh * n);
      accums.get(s.name)!.data.set(named.get(`accum.${s.name}`)!.data, bh * n);
    }
    for (const [s, t] of opts) {
      const n = size(t.shape.slice(2));
      t.data.set(named.get(optimizerState(s))!.data, bh * n);
    }
  }
  return { output, states, accums, ...(inp.opts ? { opts } : {}) };
}
