/**
 * Support for layer tests of update rules: random weights of any spec's layer (its rule gates
 * included), and an inner loop that runs the independent per-token recurrence
 * (tests/support/recurrence.ts) instead of the compiler's mini-batch program.
 */
import type { Compiled } from '../../compiler/pipeline.ts';
import type { KernelSignature } from '../../core/signature.ts';
import type { Tensor } from '../../core/tensor.ts';
import { optimizerState } from '../../core/update-rule.ts';
import type { InnerLoopInputs, InnerLoopOutputs } from '../../runtime/inner-loop.ts';
import type { LayerConfig } from '../../runtime/layer/config.ts';
import type { InnerLoopBackend } from '../../runtime/layer/layer.ts';
import { assembleWeights, type LayerWeights, weightSpecs } from '../../runtime/layer/weights.ts';
import { normals, rng } from './random.ts';
import { runRecurrence } from './recurrence.ts';

/** Random weights of the right shapes for a spec and a configuration. */
export function randomWeights(signature: KernelSignature, config: LayerConfig, seed: number): LayerWeights {
  const r = rng(seed);
  const byName = new Map<string, Tensor>();
  for (const spec of weightSpecs(signature, config)) {
    const shape = spec.shapes[0];
    const n = shape.reduce((a, b) => a * b, 1);
    const fanIn = shape.length > 1 ? shape[shape.length - 1] : 4;
    byName.set(spec.name, { shape, data: normals(r, n, 1 / Math.sqrt(fanIn)) });
  }
  return assembleWeights(signature, byName);
}

/** The inner loop as the literal per-token recurrence of each rule, in f64. */
export function recurrenceInnerLoop(compiled: Compiled): InnerLoopBackend {
  return {
    run: async (inputs: InnerLoopInputs): Promise<InnerLoopOutputs> => {
      const named = new Map<string, Tensor>(inputs.views);
      if (inputs.lr) named.set('lr', inputs.lr);
      for (const [n, t] of inputs.tokens ?? []) named.set(n, t);
      for (const [n, t] of inputs.params) named.set(`param.${n}`, t);
      for (const [n, t] of inputs.states) named.set(`state.${n}`, t);
      for (const [n, t] of inputs.accums) named.set(`accum.${n}`, t);
      for (const [n, t] of inputs.opts ?? []) named.set(optimizerState(n), t);
      named.set('start', { shape: [], data: Float64Array.of(inputs.start) });
      const out = runRecurrence(compiled.layer, named);
      const byState = (key: (s: string) => string) =>
        new Map([...inputs.states.keys()].filter((s) => out.has(key(s))).map((s) => [s, out.get(key(s))!]));
      const opts = byState(optimizerState);
      return {
        output: out.get('output')!,
        states: byState((s) => `state.${s}`),
        accums: byState((s) => `accum.${s}`),
        ...(opts.size && { opts }),
      };
    },
  };
}
