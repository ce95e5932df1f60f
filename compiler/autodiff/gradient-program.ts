/** The per-token gradient program `tttc grad` prints: the loss of one token and ∇loss for every state. */
import { programKey } from '../../core/mangle.ts';
import type { CheckedLayer } from '../check/checked.ts';
import { Builder, type Program } from '../ir/ir.ts';
import { Lowering } from '../ir/lower.ts';
import { grad } from './vjp.ts';

export function gradientProgram(layer: CheckedLayer): Program {
  const b = new Builder();
  const states = new Map(
    layer.states.map((s) => [s.name, b.input(programKey({ role: 'state', name: s.name }), s.shape)]),
  );
  const lowering = new Lowering(layer, b, 1, { value: (s) => ({ id: states.get(s)!, rows: false }) });
  const perRow = lowering.ops.lift(lowering.viewFn(layer.loss));
  const loss = b.reshape(perRow, []);
  b.origin = layer.update.span;
  const grads = grad(b, loss, [...states.values()]);
  return b.build([
    { name: 'loss', node: loss },
    ...layer.states.map((s, i) => ({ name: `grad.${s.name}`, node: grads[i] })),
  ]);
}
