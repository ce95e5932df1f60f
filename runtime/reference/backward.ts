/**
 * The reference backward (f64): for each sequence-head, the chunks of the call in reverse, each
 * running the chunk's backward program (compiler/backward) on the carry it started from (saved
 * by the forward, `runReference` with checkpoints) and the cotangents of its outputs, handing the
 * carry's cotangent to the chunk before.
 */
import { type ChunkBackward, cotangentName, gradName } from '../../compiler/backward/derive.ts';
import { execute } from '../../compiler/ir/execute.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { InnerLoopCotangents, InnerLoopGradients, InnerLoopInputs } from '../inner-loop.ts';
import { carriedNames, type Checkpoints, chunkInputs, headParams, planOf, slice, tokenRows } from './inner-loop.ts';

const zerosLike = (t: Tensor): Tensor => ({ shape: t.shape, data: new Float64Array(t.data.length) });

function emptyGradients(inp: InnerLoopInputs): InnerLoopGradients {
  const zeros = (m: Map<string, Tensor>) => new Map([...m].map(([n, t]) => [n, zerosLike(t)]));
  return {
    views: zeros(inp.views),
    lr: inp.lr && zerosLike(inp.lr),
    scale: inp.scale && zerosLike(inp.scale),
    params: zeros(inp.params),
    states: zeros(inp.states),
    accums: zeros(inp.accums),
  };
}

/** Add `src` into `dst` from element `at` on. */
function addInto(dst: Float64Array, src: ArrayLike<number>, at = 0, count = src.length): void {
  for (let i = 0; i < count; i++) dst[at + i] += src[i];
}

export function runReferenceBackward(
  backward: ChunkBackward,
  inp: InnerLoopInputs,
  checkpoints: Checkpoints,
  cotangents: InnerLoopCotangents,
): InnerLoopGradients {
  const chunk = backward.forward;
  const R = chunk.rows;
  const K = chunk.K;
  const plan = planOf(chunk, inp);
  const grads = emptyGradients(inp);
  const outputPort = chunk.program.outputs.find((o) => o.name === 'output')!;
  const outputRowShape = chunk.program.nodes[outputPort.node].shape;
  /** Where the gradient of a carried input `state.S` or `accum.S` goes, and what cotangent it starts from. */
  const carriedOf = (input: string) => {
    const [kind, state] = input.split(/\.(.*)/s, 2);
    if (kind === 'state') return { grads: grads.states.get(state)!, cotangent: cotangents.states.get(state)! };
    if (kind === 'accum') return { grads: grads.accums.get(state)!, cotangent: cotangents.accums.get(state)! };
    return undefined;
  };

  for (let bh = 0; bh < inp.B * inp.H; bh++) {
    const h = bh % inp.H;
    const saved = checkpoints[bh];

    // The carry's cotangent, from the cotangents of the call's final states and accumulators.
    let carried = new Map<string, Tensor>();
    for (const n of carriedNames(chunk)) {
      const { cotangent } = carriedOf(n)!;
      const w = size(cotangent.shape.slice(2));
      carried.set(n, { shape: cotangent.shape.slice(2), data: slice(cotangent, bh, w) });
    }
    const params = headParams(chunk, inp, h);
    for (let i = plan.length - 1; i >= 0; i--) {
      const c = plan[i];
      const named = new Map([...chunkInputs(chunk, inp, bh, c), ...params, ...saved[i]]);
      named.set(cotangentName('output'), { shape: outputRowShape, data: tokenRows(cotangents.output, bh, c, R) });
      for (const [n, t] of carried) named.set(cotangentName(n), t);
      const result = execute(backward.program, named);
      const next = new Map<string, Tensor>();
      for (const input of backward.differentiable) {
        const g = result.get(gradName(input))!;
        const [kind, name] = input.split(/\.(.*)/s, 2);
        if (kind === 'view') {
          const t = grads.views.get(name)!;
          const w = size(t.shape.slice(3));
          addInto(t.data, g.data, (bh * inp.T + c.token) * w, c.count * w);
        } else if (input === 'lr') addInto(grads.lr!.data, g.data, bh * inp.T + c.token, c.count);
        else if (input === 'scale') addInto(grads.scale!.data, g.data, c.position, c.count);
        else if (input === 'commit') {
          // commit is scale_{K-1} on the chunk that ends a mini-batch, 0 (not data) on the others.
          if (c.ends && grads.scale) grads.scale.data[K - 1] += g.data[0];
        } else if (kind === 'param') addInto(slice(grads.params.get(name)!, h, g.data.length), g.data);
        else if (carriedOf(input)) next.set(input, g);
        else throw new Error(`the backward walk has no gradient for chunk input '${input}'`);
      }
      carried = next;
    }
    for (const [n, g] of carried) slice(carriedOf(n)!.grads, bh, g.data.length).set(g.data);
  }
  return grads;
}
