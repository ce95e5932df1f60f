/**
 * The reference backend: the derived mini-batch program run chunk by chunk in f64, over the walk
 * of core/walk.ts. The CLI and tests link it to the runtime as an inner-loop backend.
 */
import { programKey } from '../../core/mangle.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { chunks } from '../../core/walk.ts';
import type { InnerLoopInputs, InnerLoopOutputs } from '../../runtime/inner-loop.ts';
import { type ChunkProgram, WALK } from '../dualform/derive.ts';
import { execute } from '../ir/execute.ts';

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
  const perHead = () =>
    new Map(
      L.states.map((s) => [s.name, { shape: [B, H, ...s.shape], data: new Float64Array(B * H * size(s.shape)) }]),
    );
  const states = perHead();
  const accums = perHead();
  const R = chunk.rows;
  const plan = chunks(start, T, K, R);
  const scale = inp.scale?.data;
  const key = (role: 'state' | 'accum' | 'param' | 'view', name: string) => programKey({ role, name });

  for (let bh = 0; bh < B * H; bh++) {
    const h = bh % H;
    const named = new Map<string, Tensor>();
    for (const p of L.params)
      named.set(key('param', p.name), { shape: p.shape, data: slice(inp.params.get(p.name)!, h, size(p.shape)) });
    for (const s of L.states) {
      const n = size(s.shape);
      named.set(key('state', s.name), { shape: s.shape, data: slice(inp.states.get(s.name)!, bh, n).slice() });
      named.set(key('accum', s.name), { shape: s.shape, data: slice(inp.accums.get(s.name)!, bh, n).slice() });
    }
    for (const c of plan) {
      const mask = new Float64Array(R);
      mask.fill(1, 0, c.count);
      named.set(WALK.mask, { shape: [R], data: mask });
      if (scale) {
        // Each row's own scale_i; rows past the chunk's tokens are masked and read 0.
        const rows = new Float64Array(R);
        rows.set(scale.subarray(c.position, c.position + c.count));
        named.set(programKey({ role: 'scale', name: 'scale' }), { shape: [R], data: rows });
      }
      named.set(WALK.commit, { shape: [], data: Float64Array.of(c.ends ? commitScale(chunk, scale) : 0) });
      named.set(WALK.keep, { shape: [], data: Float64Array.of(c.ends ? 0 : 1) });
      for (const v of L.views) {
        const w = size(v.shape);
        const rows = new Float64Array(R * w);
        const src = slice(inp.views.get(v.name)!, bh, T * w);
        rows.set(src.subarray(c.token * w, (c.token + c.count) * w));
        named.set(key('view', v.name), { shape: [R, ...v.shape], data: rows });
      }
      if (inp.lr) {
        const rows = new Float64Array(R);
        rows.set(slice(inp.lr, bh, T).subarray(c.token, c.token + c.count));
        named.set(programKey({ role: 'rate', name: 'lr' }), { shape: [R], data: rows });
      }
      const result = execute(chunk.program, named);
      const out = result.get(programKey({ role: 'output', name: 'output' }))!.data;
      output.data.set(out.subarray(0, c.count * outWidth), (bh * T + c.token) * outWidth);
      for (const s of L.states)
        for (const role of ['state', 'accum'] as const) named.set(key(role, s.name), result.get(key(role, s.name))!);
    }
    for (const s of L.states) {
      const n = size(s.shape);
      states.get(s.name)!.data.set(named.get(key('state', s.name))!.data, bh * n);
      accums.get(s.name)!.data.set(named.get(key('accum', s.name))!.data, bh * n);
    }
  }
  return { output, states, accums };
}
