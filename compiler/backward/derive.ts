/**
 * Derives the backward of one chunk: reverse-mode autodiff of the chunk program (derive.ts in
 * dualform/), for any spec and either form, with nothing written per layer or rule.
 *
 * Inputs: every input of the chunk program, plus `cotangent.NAME` for each of its outputs
 * (`cotangent.output` [R, ...], `cotangent.state.S`, `cotangent.accum.S`), shaped like that
 * output. Outputs: `grad.NAME` for every differentiable input NAME of the chunk program, shaped
 * like it: the vector-Jacobian product Σ_outputs ⟨cotangent, ∂output/∂input⟩.
 *
 * The per-token gradients inside the chunk program depend on the state and on the views, so these
 * gradients carry second derivatives of the loss; the autodiff provides them since its adjoints
 * are ordinary IR. The builder's hash-consing and folding share and simplify what the forward
 * and the backward have in common.
 */
import { grad } from '../autodiff/vjp.ts';
import type { ChunkProgram } from '../dualform/derive.ts';
import { Builder, type Program } from '../ir/ir.ts';

/**
 * Inputs that select rows and mini-batch ends: 0/1 by construction of the walk, not data, so
 * they get no gradient.
 */
const SELECTORS = new Set(['mask', 'keep']);

export const cotangentName = (output: string): string => `cotangent.${output}`;
export const gradName = (input: string): string => `grad.${input}`;

export interface ChunkBackward {
  forward: ChunkProgram;
  program: Program;
  /** The chunk program's inputs that get a gradient, in the order of the program's outputs. */
  differentiable: readonly string[];
}

/** Backwards by chunk program: every target of one compile derives a backward once. */
const derived = new WeakMap<ChunkProgram, ChunkBackward>();

export function deriveChunkBackward(forward: ChunkProgram): ChunkBackward {
  const known = derived.get(forward);
  if (known) return known;
  const backward = deriveOnce(forward);
  derived.set(forward, backward);
  return backward;
}

function deriveOnce(forward: ChunkProgram): ChunkBackward {
  const p = forward.program;
  const b = new Builder(p);
  const differentiable = p.inputs.filter((i) => !SELECTORS.has(i.name));
  // ⟨cotangent, output⟩ summed over every output: its gradient is the vector-Jacobian product.
  let pairing = b.const(0);
  for (const o of p.outputs) {
    const shape = b.shape(o.node);
    const cotangent = b.input(cotangentName(o.name), shape);
    const axes = shape.map((_, i) => i);
    pairing = b.add(pairing, b.sum(b.mul(o.node, cotangent), axes));
  }
  const grads = grad(
    b,
    pairing,
    differentiable.map((i) => i.node),
  );
  return {
    forward,
    differentiable: differentiable.map((i) => i.name),
    program: b.build(differentiable.map((i, n) => ({ name: gradName(i.name), node: grads[n] }))),
  };
}
