/**
 * A compiled inner loop as the runtime sees it: the names and shapes of its tensors and how it
 * learns, no programs. Plain JSON, so a generated module can embed it and the WebGPU runtime can
 * run a kernel rendered ahead of time without loading the compiler.
 */
import type { CheckedLayer } from '../compiler/check/checked.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, type UpdateRuleSignature } from '../core/update-rule.ts';

export interface TensorSignature {
  name: string;
  shape: readonly number[];
}

export interface InnerLoopSignature {
  /** The spec's `layer NAME`. */
  layer: string;
  /** The mini-batch size. */
  K: number;
  /** Per-token shapes, in the order the spec first uses the views. */
  views: readonly TensorSignature[];
  /** The output's per-token shape. */
  output: readonly number[];
  /** Per-head shapes. */
  states: readonly TensorSignature[];
  params: readonly TensorSignature[];
  /** The inner learning rate: an `lr` input per token, or a constant. */
  lr: { kind: 'token' } | { kind: 'constant'; value: number };
  /** scale_i of the update: a `scale` input per mini-batch position, none, or a constant. */
  scale: { kind: 'position' } | { kind: 'none' } | { kind: 'constant'; value: number };
  /** A rule beyond plain sgd: its extra per-token inputs and optimizer states. Absent for plain sgd. */
  rule?: UpdateRuleSignature;
}

const tensors = (list: readonly { name: string; shape: readonly number[] }[]): TensorSignature[] =>
  list.map((t) => ({ name: t.name, shape: [...t.shape] }));

/** The signature of a compiled spec (only types come from the compiler: nothing of it is loaded). */
export function signatureOf(compiled: Compiled): InnerLoopSignature {
  const L = compiled.layer;
  const { program } = compiled.chunk;
  const { lr, scale } = L.update;
  return {
    layer: L.name,
    K: compiled.chunk.K,
    views: tensors(L.views),
    output: program.nodes[program.outputs[0].node].shape.slice(1),
    states: tensors(L.states),
    params: tensors(L.params),
    lr: lr.kind === 'token' ? { kind: 'token' } : { kind: 'constant', value: lr.value },
    scale: scale.kind === 'constant' ? { kind: 'constant', value: scale.value } : { kind: scale.kind },
    ...(L.update.rules.plain ? {} : { rule: ruleSignature(L) }),
  };
}

/** The extra tensors of a rule beyond plain sgd. */
export function ruleSignature(layer: CheckedLayer): UpdateRuleSignature {
  const rule = layer.update.rules;
  const own = [...rule.rates.values()].filter((r) => r.spec.kind === 'token' && r.input !== 'lr').map((r) => r.input);
  const tokenInputs = [
    ...own,
    ...(rule.decay?.kind === 'token' ? [DECAY_INPUT] : []),
    ...(rule.momentum?.kind === 'token' ? [MOMENTUM_INPUT] : []),
  ];
  const optimizerStates = rule.momentum ? layer.states.map((s) => s.name) : [];
  return { tokenInputs, optimizerStates, read: rule.read };
}
