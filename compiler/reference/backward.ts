/**
 * The reference backward (f64): for each sequence-head, the chunks of the call in reverse, each
 * running the chunk's backward program (compiler/backward) on the carry it started from (saved
 * by the forward, `runReference` with checkpoints) and the cotangents of its outputs, handing the
 * carry's cotangent to the chunk before. Every other input's gradient goes back along the path
 * its values came by (`Gathered`).
 */
import { type ChunkBackward, cotangentName, gradName } from '../backward/derive.ts';
import { execute, type Precision } from '../ir/execute.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { optimizerState } from '../../core/update-rule.ts';
import type { InnerLoopCotangents, InnerLoopGradients, InnerLoopInputs } from '../../runtime/inner-loop.ts';
import {
  carriedNames,
  type Checkpoints,
  chunkInputs,
  headParams,
  planOf,
  slice,
  tokenRows,
  values,
} from './inner-loop.ts';

export function runReferenceBackward(
  backward: ChunkBackward,
  inp: InnerLoopInputs,
  checkpoints: Checkpoints,
  cotangents: InnerLoopCotangents,
  /** `bf16`: every value rounded to f32, and products' operands to bf16, as a bf16 kernel computes (compiler/ir/execute.ts). */
  precision: Precision = 'f64',
): InnerLoopGradients {
  const chunk = backward.forward;
  const plan = planOf(chunk, inp);
  /** Each call input's gradient, by the input tensor. */
  const gradOf = new Map<Tensor, Tensor>();
  const zerosFor = (t: Tensor) => {
    const g = { shape: t.shape, data: new Float64Array(t.data.length) };
    gradOf.set(t, g);
    return g;
  };
  const zerosForAll = (m: Map<string, Tensor>) => new Map([...m].map(([n, t]) => [n, zerosFor(t)]));
  const grads: InnerLoopGradients = {
    views: zerosForAll(inp.views),
    lr: inp.lr && zerosFor(inp.lr),
    scale: inp.scale && zerosFor(inp.scale),
    params: zerosForAll(inp.params),
    states: zerosForAll(inp.states),
    accums: zerosForAll(inp.accums),
    tokens: zerosForAll(inp.tokens ?? new Map()),
    opts: zerosForAll(inp.opts ?? new Map()),
  };
  /** A carried input `state.S`, `accum.S` or `opt.S`: its gradient and the cotangent of its final value. */
  const carriedInputs = new Map<string, { grad: Tensor; cotangent: Tensor }>();
  for (const [s, grad] of grads.states) carriedInputs.set(`state.${s}`, { grad, cotangent: cotangents.states.get(s)! });
  for (const [s, grad] of grads.accums) carriedInputs.set(`accum.${s}`, { grad, cotangent: cotangents.accums.get(s)! });
  for (const [s, grad] of grads.opts)
    carriedInputs.set(optimizerState(s), { grad, cotangent: cotangents.opts.get(s)! });
  const carriedOf = (input: string) => carriedInputs.get(input);

  for (let bh = 0; bh < inp.B * inp.H; bh++) {
    let carried = new Map<string, Tensor>();
    for (const n of carriedNames(chunk)) {
      const { cotangent } = carriedOf(n)!;
      const shape = cotangent.shape.slice(2);
      carried.set(n, { shape, data: slice(cotangent, bh, size(shape)) });
    }
    const params = headParams(chunk, inp, bh % inp.H);
    for (let i = plan.length - 1; i >= 0; i--) {
      const c = plan[i];
      const gathered = new Map([...chunkInputs(chunk, inp, bh, c), ...params]);
      const named = new Map([...values(gathered), ...checkpoints[bh][i]]);
      named.set(cotangentName('output'), tokenRows(cotangents.output, bh, c, chunk.rows).value);
      for (const [n, t] of carried) named.set(cotangentName(n), t);
      const result = execute(backward.program, named, precision);
      const next = new Map<string, Tensor>();
      for (const input of backward.differentiable) {
        const g = result.get(gradName(input))!;
        const from = gathered.get(input);
        if (from) {
          // Constants of the walk (a commit of a constant scale) have no source and no gradient.
          if (!from.from) continue;
          const { tensor, at, count } = from.from;
          const to = gradOf.get(tensor)!.data;
          for (let e = 0; e < count; e++) to[at + e] += g.data[e];
        } else if (carriedOf(input)) next.set(input, g);
        else throw new Error(`the backward walk has no gradient for chunk input '${input}'`);
      }
      carried = next;
    }
    for (const [n, g] of carried) slice(carriedOf(n)!.grad, bh, g.data.length).set(g.data);
  }
  return grads;
}
