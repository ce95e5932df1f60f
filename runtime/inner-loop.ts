/**
 * The inner loop's data, in the `run` convention shared by every backend (README, "The run
 * convention"): each port of the kernel signature under its run key (core/mangle.ts): views
 * [B, H, T, ...] by name (`view.NAME` always works and is needed for names the convention reserves),
 * `lr` [B, H, T], `scale` [K], `param.NAME` [H, ...], `state.NAME` [B, H, ...] or [H, ...]
 * (broadcast over B), optional `accum.NAME` [B, H, ...], and `start`, a position in [0, K).
 */
import { runKey, runKeys } from '../core/mangle.ts';
import { showShape, size } from '../core/shape.ts';
import {
  type KernelSignature,
  type Port,
  paramPorts,
  ratePort,
  scalePort,
  statePorts,
  viewPorts,
} from '../core/signature.ts';
import type { Tensor } from '../core/tensor.ts';
export interface InnerLoopInputs {
  B: number;
  H: number;
  T: number;
  start: number;
  views: Map<string, Tensor>;
  lr?: Tensor;
  scale?: Tensor;
  params: Map<string, Tensor>;
  /** [B, H, ...] each (already broadcast over B). */
  states: Map<string, Tensor>;
  /** [B, H, ...] each; zeros when none were given. */
  accums: Map<string, Tensor>;
}

export interface InnerLoopOutputs {
  output: Tensor;
  states: Map<string, Tensor>;
  accums: Map<string, Tensor>;
}

export class InputError extends Error {}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

function expect(name: string, t: Tensor | undefined, shape: readonly number[]): Tensor {
  if (!t) throw new InputError(`missing input tensor '${name}' (expected shape ${showShape(shape)})`);
  if (!same(t.shape, shape))
    throw new InputError(`input tensor '${name}' has shape ${showShape(t.shape)}, expected ${showShape(shape)}`);
  return t;
}

/** Repeat an [H, ...] tensor over B sequences. */
function broadcastOverBatch(t: Tensor, B: number): Tensor {
  const data = new Float64Array(B * t.data.length);
  for (let b = 0; b < B; b++) data.set(t.data, b * t.data.length);
  return { shape: [B, ...t.shape], data };
}

/** The tensor a run file gives for a port, under any of its names (never under two). */
function given(named: ReadonlyMap<string, Tensor>, port: Port): { key: string; tensor?: Tensor } {
  const found = runKeys(port).filter((k) => named.has(k));
  if (found.length > 1)
    throw new InputError(
      `input tensors ${found.map((k) => `'${k}'`).join(' and ')} name the same ${port.role}; give one`,
    );
  const key = found[0] ?? runKey(port);
  return { key, tensor: named.get(key) };
}

/**
 * Gather and check the inner loop's inputs from named tensors (`q`, `lr`, `param.gamma`,
 * `state.W1`, `accum.W1`, `start`, ...). Errors name the tensor and both shapes.
 */
export function innerLoopInputs(sig: KernelSignature, named: ReadonlyMap<string, Tensor>): InnerLoopInputs {
  const viewList = viewPorts(sig);
  if (viewList.length === 0) throw new InputError(`${sig.layer} has no views, so a call has no tokens to walk`);
  const first = viewList[0];
  const { key: firstKey, tensor: probe } = given(named, first);
  const perToken = `[B, H, T, ${first.shape.join(', ')}]`.replace(', ]', ']');
  if (!probe) throw new InputError(`missing input tensor '${firstKey}' (a view of the spec, shape ${perToken})`);
  if (probe.shape.length !== 3 + first.shape.length)
    throw new InputError(`input tensor '${firstKey}' has shape ${showShape(probe.shape)}, expected ${perToken}`);
  const [B, H, T] = probe.shape;
  const read = (port: Port, shape: readonly number[]) => {
    const { key, tensor } = given(named, port);
    return expect(key, tensor, shape);
  };
  const views = new Map(viewList.map((v) => [v.name, read(v, [B, H, T, ...v.shape])]));
  const rate = ratePort(sig);
  const lr = rate ? read(rate, [B, H, T]) : undefined;
  const scalePortOf = scalePort(sig);
  const scale = scalePortOf ? read(scalePortOf, scalePortOf.shape) : undefined;
  const params = new Map(paramPorts(sig).map((p) => [p.name, read(p, [H, ...p.shape])]));
  const states = new Map<string, Tensor>();
  const accums = new Map<string, Tensor>();
  const accumOf = new Map(sig.inputs.filter((p) => p.role === 'accum').map((p) => [p.name, p]));
  for (const s of statePorts(sig)) {
    const { key, tensor } = given(named, s);
    states.set(
      s.name,
      tensor && tensor.shape.length === s.shape.length + 1
        ? broadcastOverBatch(expect(key, tensor, [H, ...s.shape]), B)
        : expect(key, tensor, [B, H, ...s.shape]),
    );
    const a = given(named, accumOf.get(s.name)!);
    accums.set(
      s.name,
      a.tensor
        ? expect(a.key, a.tensor, [B, H, ...s.shape])
        : { shape: [B, H, ...s.shape], data: new Float64Array(B * H * size(s.shape)) },
    );
  }
  const startTensor = named.get('start');
  const start = startTensor ? startTensor.data[0] : 0;
  if (startTensor && size(startTensor.shape) !== 1)
    throw new InputError(`input tensor 'start' has shape ${showShape(startTensor.shape)}, expected [] or [1]`);
  if (!Number.isInteger(start) || start < 0 || start >= sig.K)
    throw new InputError(`start position ${start} is not an integer in [0, ${sig.K})`);
  return { B, H, T, start, views, lr, scale, params, states, accums };
}

/** The named tensors a backend writes, under the output ports' run keys: `output`, `state.S`, `accum.S`. */
export function innerLoopOutputTensors(out: InnerLoopOutputs): Map<string, Tensor> {
  const named = new Map<string, Tensor>([[runKey({ role: 'output', name: 'output' }), out.output]]);
  for (const [name, t] of out.states) named.set(runKey({ role: 'state', name }), t);
  for (const [name, t] of out.accums) named.set(runKey({ role: 'accum', name }), t);
  return named;
}
