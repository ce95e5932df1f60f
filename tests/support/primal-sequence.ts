/**
 * An independent implementation of a call's gradients, written from semantics.md §1 and §5 for
 * checking the derived backward: the primal form token by token (a state per token, no chunks,
 * no dual form), unrolled over one sequence-head into a single IR program, with the per-token
 * inner gradients from the compiler's `grad` of the per-token loss (`tttc grad`'s program) and
 * the outer gradients from reverse mode through all of it (second derivatives included).
 */
import { gradientProgram } from '../../compiler/autodiff/gradient-program.ts';
import { grad } from '../../compiler/autodiff/vjp.ts';
import type { CheckedLayer } from '../../compiler/check/checked.ts';
import { execute } from '../../compiler/ir/execute.ts';
import { Builder, type Program, size } from '../../compiler/ir/ir.ts';
import { Lowering } from '../../compiler/ir/lower.ts';
import type { Tensor } from '../../core/tensor.ts';

/** Copy `p` into `b` with its inputs bound to nodes of `b`; returns its outputs' nodes by name. */
function inline(b: Builder, p: Program, bind: ReadonlyMap<string, number>): Map<string, number> {
  const ids: number[] = [];
  for (const n of p.nodes) {
    const a = n.args.map((x) => ids[x]);
    const op = n.op;
    switch (op.kind) {
      case 'input': {
        const bound = bind.get(op.name);
        if (bound === undefined) throw new Error(`inline: no binding for ${op.name}`);
        ids.push(bound);
        break;
      }
      case 'const':
        ids.push(b.const(op.value, n.shape));
        break;
      case 'tril':
        ids.push(b.tril(n.shape[0]));
        break;
      case 'unary':
        ids.push(b.unary(op.fn, a[0]));
        break;
      case 'binary':
        ids.push(b.binary(op.fn, a[0], a[1]));
        break;
      case 'matmul':
        ids.push(b.matmul(a[0], a[1]));
        break;
      case 'sum':
        ids.push(b.sum(a[0], op.axes));
        break;
      case 'expand':
        ids.push(b.expand(a[0], n.shape));
        break;
      case 'reshape':
        ids.push(b.reshape(a[0], n.shape));
        break;
      case 'transpose':
        ids.push(b.transpose(a[0], op.perm));
        break;
    }
  }
  return new Map(p.outputs.map((o) => [o.name, ids[o.node]]));
}

/** output(θ; views) of one token: inputs `state.S`, `view.X` [1, ...], `param.P`; output [1, ...]. */
function outputProgram(layer: CheckedLayer): Program {
  const b = new Builder();
  const states = new Map(layer.states.map((s) => [s.name, b.input(`state.${s.name}`, s.shape)]));
  const lowering = new Lowering(layer, b, 1, { value: (s) => ({ id: states.get(s)!, rows: false }) });
  return b.build([{ name: 'output', node: lowering.ops.lift(lowering.viewFn(layer.output)) }]);
}

/** Named inputs of one sequence-head in the `run` convention, without its B, H axes. */
export interface SequenceData {
  T: number;
  start: number;
  K: number;
  views: Map<string, Tensor>;
  lr?: Float64Array;
  scale?: Float64Array;
  params: Map<string, Tensor>;
  states: Map<string, Tensor>;
  accums: Map<string, Tensor>;
  /** Cotangents: output [T, ...], and of the final states and accumulators. */
  ctOutput: Tensor;
  ctStates: Map<string, Tensor>;
  ctAccums: Map<string, Tensor>;
}

/** Gradients of ⟨cotangents, outputs⟩ for one sequence-head, by the unrolled primal form. */
export interface SequenceGradients {
  views: Map<string, Float64Array>;
  lr?: Float64Array;
  scale?: Float64Array;
  params: Map<string, Float64Array>;
  states: Map<string, Float64Array>;
  accums: Map<string, Float64Array>;
}

export function primalSequenceGradients(layer: CheckedLayer, d: SequenceData): SequenceGradients {
  const gradProgram = gradientProgram(layer);
  const outProgram = outputProgram(layer);
  const b = new Builder();
  const named = new Map<string, Tensor>();
  const input = (name: string, t: Tensor) => {
    named.set(name, t);
    return b.input(name, t.shape);
  };
  const row = (t: Tensor, i: number): Tensor => {
    const w = size(t.shape.slice(1));
    return { shape: [1, ...t.shape.slice(1)], data: t.data.slice(i * w, (i + 1) * w) };
  };
  const params = new Map([...d.params].map(([p, t]) => [`param.${p}`, input(`param.${p}`, t)]));
  const { lr: lrSpec, scale: scaleSpec } = layer.update;
  const scaleAt = (i: number): number =>
    d.scale
      ? input(`scale.${i}`, { shape: [], data: Float64Array.of(d.scale[i]) })
      : b.const(scaleSpec.kind === 'constant' ? scaleSpec.value : 1);
  let theta = new Map([...d.states].map(([s, t]) => [s, input(`state.${s}`, t)]));
  let A = new Map([...d.accums].map(([s, t]) => [s, input(`accum.${s}`, t)]));
  const broadcast = (scalar: number, s: string) => b.expand(scalar, b.shape(theta.get(s)!));

  const tokenInputs = (t: number) => {
    const bind = new Map(params);
    for (const [v, x] of d.views) bind.set(`view.${v}`, input(`view.${v}.${t}`, row(x, t)));
    return bind;
  };
  let pairing = b.const(0);
  const pair = (x: number, ct: Tensor, name: string) =>
    (pairing = b.add(
      pairing,
      b.sum(
        b.mul(x, input(name, ct)),
        b.shape(x).map((_, i) => i),
      ),
    ));

  for (let t = 0; t < d.T; t++) {
    const i = (d.start + t) % d.K;
    const bind = tokenInputs(t);
    // g_t = ∇θ loss at the mini-batch's starting θ; A += lr_t g_t; θ_i = θ − scale_i A.
    for (const [s, node] of theta) bind.set(`state.${s}`, node);
    const g = inline(b, gradProgram, bind);
    const lr =
      lrSpec.kind === 'token'
        ? input(`lr.${t}`, { shape: [], data: Float64Array.of(d.lr![t]) })
        : b.const(lrSpec.value);
    A = new Map([...A].map(([s, a]) => [s, b.add(a, b.mul(broadcast(lr, s), g.get(`grad.${s}`)!))]));
    const si = scaleAt(i);
    for (const [s, node] of theta) bind.set(`state.${s}`, b.sub(node, b.mul(broadcast(si, s), A.get(s)!)));
    pair(inline(b, outProgram, bind).get('output')!, row(d.ctOutput, t), `ct.output.${t}`);
    if (i === d.K - 1) {
      const sK = scaleAt(d.K - 1);
      theta = new Map([...theta].map(([s, node]) => [s, b.sub(node, b.mul(broadcast(sK, s), A.get(s)!))]));
      A = new Map([...A].map(([s, a]) => [s, b.const(0, b.shape(a))]));
    }
  }
  for (const [s, node] of theta) pair(node, d.ctStates.get(s)!, `ct.state.${s}`);
  for (const [s, node] of A) pair(node, d.ctAccums.get(s)!, `ct.accum.${s}`);

  const wrt = b.inputs.filter((p) => !p.name.startsWith('ct.'));
  const grads = grad(
    b,
    pairing,
    wrt.map((p) => p.node),
  );
  const program = b.build(wrt.map((p, n) => ({ name: p.name, node: grads[n] })));
  const result = execute(program, named);
  const get = (name: string) => result.get(name)!.data;
  const perToken = (prefix: string, w: number) => {
    const out = new Float64Array(d.T * w);
    for (let t = 0; t < d.T; t++) out.set(get(`${prefix}.${t}`), t * w);
    return out;
  };
  const scale = d.scale && new Float64Array(d.K);
  if (scale) for (let i = 0; i < d.K; i++) if (result.has(`scale.${i}`)) scale[i] = get(`scale.${i}`)[0];
  return {
    views: new Map([...d.views].map(([v, x]) => [v, perToken(`view.${v}`, size(x.shape.slice(1)))])),
    lr: lrSpec.kind === 'token' ? perToken('lr', 1) : undefined,
    scale,
    params: new Map([...d.params].map(([p]) => [p, get(`param.${p}`)])),
    states: new Map([...d.states].map(([s]) => [s, get(`state.${s}`)])),
    accums: new Map([...d.accums].map(([s]) => [s, get(`accum.${s}`)])),
  };
}
