/**
 * The reference backend: the derived mini-batch program run chunk by chunk in f64, over the walk
 * of core/walk.ts. The CLI and tests link it to the runtime as an inner-loop backend.
 */
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { optimizerState } from '../../core/update-rule.ts';
import { type Chunk, chunks } from '../../core/walk.ts';
import { InputError, type InnerLoopInputs, type InnerLoopOutputs } from '../../runtime/inner-loop.ts';
import { type ChunkProgram, WALK } from '../dualform/derive.ts';
import { execute, type Precision } from '../ir/execute.ts';

/** The `bh`-th block of `block` elements. */
export const slice = (t: Tensor, bh: number, block: number): Float64Array =>
  t.data.subarray(bh * block, (bh + 1) * block);

/** The chunks a call walks, in the rows of this chunk program. */
export function planOf(chunk: ChunkProgram, inp: InnerLoopInputs): Chunk[] {
  if (chunk.layer.update.rules.read === 'after' && chunk.rows < chunk.K)
    throw new InputError(
      `read order 'after' needs the whole mini-batch in one chunk: this program has ${chunk.rows} rows, the mini-batch ${chunk.K}`,
    );
  return chunks(inp.start, inp.T, chunk.K, chunk.rows);
}

/** Names of what a chunk hands to the next: every output of the program but `output`. */
export const carriedNames = (chunk: ChunkProgram): string[] =>
  chunk.program.outputs.map((o) => o.name).filter((n) => n !== 'output');

/** Per-token width of the program's `output`. */
export const outputShape = (chunk: ChunkProgram): readonly number[] =>
  chunk.program.nodes[chunk.program.outputs[0].node].shape.slice(1);

/**
 * A chunk-program input and, for data, the elements of a call input it is read from: its first
 * `count` values are `from[at, at + count)`, the rest zeros. The backward adds gradients back
 * along the same path, so this is the one definition of how a call feeds its chunks.
 */
export interface Gathered {
  value: Tensor;
  from?: { tensor: Tensor; at: number; count: number };
}

function gather(shape: readonly number[], tensor: Tensor, at: number, count: number): Gathered {
  const data = new Float64Array(size(shape));
  data.set(tensor.data.subarray(at, at + count));
  return { value: { shape, data }, from: { tensor, at, count } };
}

const constant = (shape: readonly number[], data: Float64Array): Gathered => ({ value: { shape, data } });

/**
 * Tokens [c.token, c.token + c.count) of a [B, H, T, ...] tensor's `bh`-th sequence, as R rows;
 * rows past the chunk's tokens are 0, or with `repeatLast` (a view) copies of its last token, as
 * the kernels stage them: masked out of every update either way, a copy keeps a loss that is
 * singular at a zero row finite there.
 */
export function tokenRows(t: Tensor, bh: number, c: Chunk, R: number, repeatLast = false): Gathered {
  const [, , T, ...rest] = t.shape;
  const w = size(rest);
  const rows = gather([R, ...rest], t, (bh * T + c.token) * w, c.count * w);
  if (repeatLast && c.count > 0) {
    const last = rows.value.data.slice((c.count - 1) * w, c.count * w);
    for (let r = c.count; r < R; r++) rows.value.data.set(last, r * w);
  }
  return rows;
}

/** The factor the state takes its accumulator with: scale_{K-1} when the chunk ends a mini-batch, else 0. */
function commitInput(chunk: ChunkProgram, inp: InnerLoopInputs, c: Chunk): Gathered {
  if (!c.ends) return constant([], Float64Array.of(0));
  if (inp.scale) return gather([], inp.scale, chunk.K - 1, 1);
  const spec = chunk.layer.update.scale;
  return constant([], Float64Array.of(spec.kind === 'constant' ? spec.value : 1));
}

/** The chunk program's inputs that change from chunk to chunk: mask, scale, commit, keep, views, lr. */
export function chunkInputs(chunk: ChunkProgram, inp: InnerLoopInputs, bh: number, c: Chunk): Map<string, Gathered> {
  const R = chunk.rows;
  const named = new Map<string, Gathered>();
  const mask = new Float64Array(R);
  mask.fill(1, 0, c.count);
  named.set(WALK.mask, constant([R], mask));
  // Each row's own scale_i; rows past the chunk's tokens are masked and read 0.
  if (inp.scale) named.set('scale', gather([R], inp.scale, c.position, c.count));
  named.set(WALK.commit, commitInput(chunk, inp, c));
  named.set(WALK.keep, constant([], Float64Array.of(c.ends ? 0 : 1)));
  for (const v of chunk.layer.views) named.set(`view.${v.name}`, tokenRows(inp.views.get(v.name)!, bh, c, R, true));
  if (inp.lr) named.set('lr', tokenRows(inp.lr, bh, c, R));
  // A rule's other per-token inputs (`lr.S`, `decay`, `momentum`), [B, H, T] each.
  for (const [name, t] of inp.tokens ?? []) named.set(name, tokenRows(t, bh, c, R));
  return named;
}

/** Head `h`'s parameters as chunk-program inputs. */
export function headParams(chunk: ChunkProgram, inp: InnerLoopInputs, h: number): Map<string, Gathered> {
  return new Map(
    chunk.layer.params.map((p) => {
      const n = size(p.shape);
      return [`param.${p.name}`, gather(p.shape, inp.params.get(p.name)!, h * n, n)];
    }),
  );
}

/** The values of gathered inputs. */
export const values = (named: ReadonlyMap<string, Gathered>): [string, Tensor][] =>
  [...named].map(([n, g]) => [n, g.value]);

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
  precision: Precision = 'f64',
): Map<string, Tensor> {
  const L = chunk.layer;
  const outWidth = size(outputShape(chunk));
  const named = new Map(values(headParams(chunk, inp, bh % inp.H)));
  let carry = new Map<string, Tensor>();
  for (const s of L.states) {
    carry.set(`state.${s.name}`, { shape: s.shape, data: slice(inp.states.get(s.name)!, bh, size(s.shape)).slice() });
    carry.set(`accum.${s.name}`, { shape: s.shape, data: slice(inp.accums.get(s.name)!, bh, size(s.shape)).slice() });
  }
  for (const [s, t] of inp.opts ?? []) {
    const shape = t.shape.slice(2);
    carry.set(optimizerState(s), { shape, data: slice(t, bh, size(shape)).slice() });
  }
  for (const c of planOf(chunk, inp)) {
    saved?.push(carry);
    for (const [n, t] of values(chunkInputs(chunk, inp, bh, c))) named.set(n, t);
    for (const [n, t] of carry) named.set(n, t);
    const result = execute(chunk.program, named, precision);
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
  const opts =
    inp.opts && new Map([...inp.opts].map(([s, t]) => [s, { shape: t.shape, data: new Float64Array(t.data.length) }]));
  return {
    output: { shape: [B, H, T, ...outShape], data: new Float64Array(B * H * T * size(outShape)) },
    states: perHead(),
    accums: perHead(),
    ...(opts && { opts }),
  };
}

/** Store sequence-head `bh`'s final carry into the call's states and accumulators. */
function storeCarry(chunk: ChunkProgram, out: InnerLoopOutputs, bh: number, carry: Map<string, Tensor>): void {
  for (const s of chunk.layer.states) {
    const n = size(s.shape);
    out.states.get(s.name)!.data.set(carry.get(`state.${s.name}`)!.data, bh * n);
    out.accums.get(s.name)!.data.set(carry.get(`accum.${s.name}`)!.data, bh * n);
  }
  for (const [s, t] of out.opts ?? []) {
    const value = carry.get(optimizerState(s))!.data;
    t.data.set(value, bh * value.length);
  }
}

/** What the forward saves for the backward: per sequence-head, the carry each chunk starts from. */
export type Checkpoints = Map<string, Tensor>[][];

/**
 * The call; with `checkpoints` (an empty array), also what the backward recomputes each chunk from;
 * with `precision` 'f32', every value of the chunk program rounded to f32 (tests' error floor).
 */
export function runReference(
  chunk: ChunkProgram,
  inp: InnerLoopInputs,
  checkpoints?: Checkpoints,
  precision: Precision = 'f64',
): InnerLoopOutputs {
  const out = emptyOutputs(chunk, inp);
  for (let bh = 0; bh < inp.B * inp.H; bh++) {
    const saved: Map<string, Tensor>[] | undefined = checkpoints && [];
    if (saved) checkpoints!.push(saved);
    storeCarry(chunk, out, bh, walkForward(chunk, inp, bh, out.output, saved, precision));
  }
  return out;
}
