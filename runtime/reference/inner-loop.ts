/** The reference backend: the derived mini-batch program run chunk by chunk in f64. */
import type { ChunkProgram } from '../../compiler/dualform/derive.ts';
import { execute } from '../../compiler/ir/execute.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { type Chunk, chunks, type InnerLoopInputs, type InnerLoopOutputs } from '../inner-loop.ts';

/** The `bh`-th block of `block` elements. */
export const slice = (t: Tensor, bh: number, block: number): Float64Array =>
  t.data.subarray(bh * block, (bh + 1) * block);

/** The factor the state takes its accumulator with when a mini-batch ends: scale_{K-1}. */
function commitScale(chunk: ChunkProgram, scale: ArrayLike<number> | undefined): number {
  const spec = chunk.layer.update.scale;
  if (spec.kind === 'position') return scale![chunk.K - 1];
  return spec.kind === 'constant' ? spec.value : 1;
}

/** The chunks a call walks, in the rows of this chunk program. */
export const planOf = (chunk: ChunkProgram, inp: InnerLoopInputs): Chunk[] =>
  chunks(inp.start, inp.T, chunk.K, chunk.rows);

/** Names of what a chunk hands to the next: every output of the program but `output`. */
export const carriedNames = (chunk: ChunkProgram): string[] =>
  chunk.program.outputs.map((o) => o.name).filter((n) => n !== 'output');

/** Per-token width of the program's `output`. */
export const outputShape = (chunk: ChunkProgram): readonly number[] =>
  chunk.program.nodes[chunk.program.outputs[0].node].shape.slice(1);

/** Tokens [c.token, c.token + c.count) of a [B, H, T, ...] tensor's `bh`-th sequence, zero-padded to R rows. */
export function tokenRows(t: Tensor, bh: number, c: Chunk, R: number): Float64Array {
  const [, , T, ...rest] = t.shape;
  const w = size(rest);
  const rows = new Float64Array(R * w);
  rows.set(slice(t, bh, T * w).subarray(c.token * w, (c.token + c.count) * w));
  return rows;
}

/** The chunk program's inputs that change from chunk to chunk: mask, scale, commit, keep, views, lr. */
export function chunkInputs(chunk: ChunkProgram, inp: InnerLoopInputs, bh: number, c: Chunk): Map<string, Tensor> {
  const R = chunk.rows;
  const L = chunk.layer;
  const named = new Map<string, Tensor>();
  const mask = new Float64Array(R);
  mask.fill(1, 0, c.count);
  named.set('mask', { shape: [R], data: mask });
  const scale = inp.scale?.data;
  if (scale) {
    // Each row's own scale_i; rows past the chunk's tokens are masked and read 0.
    const rows = new Float64Array(R);
    rows.set(scale.subarray(c.position, c.position + c.count));
    named.set('scale', { shape: [R], data: rows });
  }
  named.set('commit', { shape: [], data: Float64Array.of(c.ends ? commitScale(chunk, scale) : 0) });
  named.set('keep', { shape: [], data: Float64Array.of(c.ends ? 0 : 1) });
  for (const v of L.views)
    named.set(`view.${v.name}`, { shape: [R, ...v.shape], data: tokenRows(inp.views.get(v.name)!, bh, c, R) });
  if (inp.lr) named.set('lr', { shape: [R], data: tokenRows(inp.lr, bh, c, R) });
  return named;
}

/** Head `h`'s parameters as chunk-program inputs. */
export function headParams(chunk: ChunkProgram, inp: InnerLoopInputs, h: number): Map<string, Tensor> {
  return new Map(
    chunk.layer.params.map((p) => [
      `param.${p.name}`,
      { shape: p.shape, data: slice(inp.params.get(p.name)!, h, size(p.shape)) },
    ]),
  );
}

/**
 * Walk sequence-head `bh` forward, chunk by chunk, writing its output rows into `output`.
 * Returns the carried states and accumulators after the last chunk; with `saved`, also the
 * ones each chunk starts from (what the backward recomputes the chunk from).
 */
function walkForward(
  chunk: ChunkProgram,
  inp: InnerLoopInputs,
  bh: number,
  output: Tensor,
  saved?: Map<string, Tensor>[],
): Map<string, Tensor> {
  const L = chunk.layer;
  const outWidth = size(outputShape(chunk));
  const named = headParams(chunk, inp, bh % inp.H);
  let carry = new Map<string, Tensor>();
  for (const s of L.states) {
    carry.set(`state.${s.name}`, { shape: s.shape, data: slice(inp.states.get(s.name)!, bh, size(s.shape)).slice() });
    carry.set(`accum.${s.name}`, { shape: s.shape, data: slice(inp.accums.get(s.name)!, bh, size(s.shape)).slice() });
  }
  for (const c of planOf(chunk, inp)) {
    saved?.push(carry);
    for (const [n, t] of chunkInputs(chunk, inp, bh, c)) named.set(n, t);
    for (const [n, t] of carry) named.set(n, t);
    const result = execute(chunk.program, named);
    const out = result.get('output')!.data;
    output.data.set(out.subarray(0, c.count * outWidth), (bh * inp.T + c.token) * outWidth);
    carry = new Map(carriedNames(chunk).map((n) => [n, result.get(n)!]));
  }
  return carry;
}

/** Empty outputs for a call: output [B, H, T, ...], states and accumulators [B, H, ...]. */
function emptyOutputs(chunk: ChunkProgram, inp: InnerLoopInputs): InnerLoopOutputs {
  const { B, H, T } = inp;
  const outShape = outputShape(chunk);
  const perHead = () =>
    new Map(
      chunk.layer.states.map((s) => [
        s.name,
        { shape: [B, H, ...s.shape], data: new Float64Array(B * H * size(s.shape)) },
      ]),
    );
  return {
    output: { shape: [B, H, T, ...outShape], data: new Float64Array(B * H * T * size(outShape)) },
    states: perHead(),
    accums: perHead(),
  };
}

/** Store sequence-head `bh`'s final carry into the call's states and accumulators. */
function storeCarry(chunk: ChunkProgram, out: InnerLoopOutputs, bh: number, carry: Map<string, Tensor>): void {
  for (const s of chunk.layer.states) {
    const n = size(s.shape);
    out.states.get(s.name)!.data.set(carry.get(`state.${s.name}`)!.data, bh * n);
    out.accums.get(s.name)!.data.set(carry.get(`accum.${s.name}`)!.data, bh * n);
  }
}

/** What the forward saves for the backward: per sequence-head, the carry each chunk starts from. */
export type Checkpoints = Map<string, Tensor>[][];

/** The call; with `checkpoints` (an empty array), also what the backward recomputes each chunk from. */
export function runReference(chunk: ChunkProgram, inp: InnerLoopInputs, checkpoints?: Checkpoints): InnerLoopOutputs {
  const out = emptyOutputs(chunk, inp);
  for (let bh = 0; bh < inp.B * inp.H; bh++) {
    const saved: Map<string, Tensor>[] | undefined = checkpoints && [];
    if (saved) checkpoints!.push(saved);
    storeCarry(chunk, out, bh, walkForward(chunk, inp, bh, out.output, saved));
  }
  return out;
}
