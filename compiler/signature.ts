/** The kernel signature of a compiled layer (core/signature.ts), derived once from its chunk program. */
import type { CheckedLayer } from './check/checked.ts';
import type { ChunkProgram } from './dualform/derive.ts';
import type { Axis, KernelSignature, Port, Role } from '../core/signature.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, type UpdateRuleSignature } from '../core/update-rule.ts';

export function kernelSignature(layer: CheckedLayer, chunk: ChunkProgram): KernelSignature {
  const { program } = chunk;
  const port = (role: Role, name: string, io: Port['io'], lead: Axis[], shape: readonly number[]): Port => ({
    role,
    name,
    io,
    lead,
    shape: [...shape],
  });
  const { lr, scale } = layer.update;
  const optimized = layer.update.rules.momentum ? layer.states : [];
  const inputs: Port[] = [
    ...layer.views.map((v) => port('view', v.name, 'in', ['B', 'H', 'T'], v.shape)),
    ...(lr.kind === 'token' ? [port('rate', 'lr', 'in', ['B', 'H', 'T'], [])] : []),
    ...ruleTokenRoles(layer).map(([role, name]) => port(role, name, 'in', ['B', 'H', 'T'], [])),
    ...(scale.kind === 'position' ? [port('scale', 'scale', 'in', [], [chunk.K])] : []),
    ...layer.params.map((p) => port('param', p.name, 'in', ['H'], p.shape)),
    ...layer.states.map((s) => port('state', s.name, 'in', ['B', 'H'], s.shape)),
    ...layer.states.map((s) => port('accum', s.name, 'in', ['B', 'H'], s.shape)),
    ...optimized.map((s) => port('opt', s.name, 'in', ['B', 'H'], s.shape)),
  ];
  const outputShape = program.nodes[program.outputs.find((o) => o.name === 'output')!.node].shape.slice(1);
  const outputs: Port[] = [
    port('output', 'output', 'out', ['B', 'H', 'T'], outputShape),
    ...layer.states.map((s) => port('state', s.name, 'out', ['B', 'H'], s.shape)),
    ...layer.states.map((s) => port('accum', s.name, 'out', ['B', 'H'], s.shape)),
    ...optimized.map((s) => port('opt', s.name, 'out', ['B', 'H'], s.shape)),
  ];
  return {
    layer: layer.name,
    K: chunk.K,
    lr: lr.kind === 'token' ? { kind: 'token' } : { kind: 'constant', value: lr.value },
    scale: scale.kind === 'constant' ? { kind: 'constant', value: scale.value } : { kind: scale.kind },
    inputs,
    outputs,
    ...(layer.update.rules.plain ? {} : { rule: ruleSignature(layer) }),
  };
}

/** The roles and names of a rule's per-token inputs: per-state rates (by state), decay, momentum. */
export function ruleTokenRoles(layer: CheckedLayer): [Role, string][] {
  const rule = layer.update.rules;
  const own = [...rule.rates].filter(([, r]) => r.spec.kind === 'token' && r.input !== 'lr');
  return [
    ...own.map(([s]): [Role, string] => ['state-rate', s]),
    ...(rule.decay?.kind === 'token' ? [['decay', DECAY_INPUT] as [Role, string]] : []),
    ...(rule.momentum?.kind === 'token' ? [['momentum', MOMENTUM_INPUT] as [Role, string]] : []),
  ];
}

/** The extra tensors of a rule beyond plain sgd: per-token inputs and optimizer states. */
function ruleSignature(layer: CheckedLayer): UpdateRuleSignature {
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
