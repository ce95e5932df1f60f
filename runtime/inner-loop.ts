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
  outputPort,
  viewPorts,
} from '../core/signature.ts';
import { asF64, type Tensor, type TensorInput } from '../core/tensor.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, optimizerState, type UpdateRuleSignature } from '../core/update-rule.ts';

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
  /** A rule's extra per-token inputs [B, H, T] (`lr.S`, `decay`, `momentum`), by name. */
  tokens?: Map<string, Tensor>;
  /** A rule's optimizer states [B, H, ...], by state name; zeros when none were given. */
  opts?: Map<string, Tensor>;
}

export interface InnerLoopOutputs {
  output: Tensor;
  states: Map<string, Tensor>;
  accums: Map<string, Tensor>;
  opts?: Map<string, Tensor>;
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
export function innerLoopInputs(sig: KernelSignature, given_: ReadonlyMap<string, TensorInput>): InnerLoopInputs {
  const named = new Map([...given_].map(([name, t]) => [name, asF64(t)]));
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
  if (sig.rule?.read === 'after' && start !== 0)
    throw new InputError(
      `start position ${start}: with read order 'after' a token reads the end of its mini-batch, so calls start at a mini-batch boundary (start 0) and cannot decode token by token`,
    );
  const rule = sig.rule && ruleInputs(sig, sig.rule, named, B, H, T);
  return { B, H, T, start, views, lr, scale, params, states, accums, ...rule };
}

/** The per-token inputs and optimizer states of a rule beyond plain sgd. */
function ruleInputs(
  sig: KernelSignature,
  rule: UpdateRuleSignature,
  named: ReadonlyMap<string, Tensor>,
  B: number,
  H: number,
  T: number,
): { tokens: Map<string, Tensor>; opts: Map<string, Tensor> } {
  const tokens = new Map(rule.tokenInputs.map((n) => [n, expect(n, named.get(n), [B, H, T])]));
  for (const n of [DECAY_INPUT, MOMENTUM_INPUT]) {
    const bad = tokens.get(n)?.data.findIndex((x) => !(x > 0 && Number.isFinite(x)));
    if (bad !== undefined && bad >= 0)
      throw new InputError(
        `input tensor '${n}' has ${tokens.get(n)!.data[bad]} at flat index ${bad}; it must be positive`,
      );
  }
  const opts = new Map<string, Tensor>();
  for (const s of rule.optimizerStates) {
    const shape = [B, H, ...statePorts(sig).find((t) => t.name === s)!.shape];
    const given = named.get(optimizerState(s));
    opts.set(s, given ? expect(optimizerState(s), given, shape) : { shape, data: new Float64Array(size(shape)) });
  }
  return { tokens, opts };
}

/** The named tensors a backend writes, under the output ports' run keys: `output`, `state.S`, `accum.S`. */
export function innerLoopOutputTensors(out: InnerLoopOutputs): Map<string, Tensor> {
  const named = new Map<string, Tensor>([[runKey({ role: 'output', name: 'output' }), out.output]]);
  for (const [name, t] of out.states) named.set(runKey({ role: 'state', name }), t);
  for (const [name, t] of out.accums) named.set(runKey({ role: 'accum', name }), t);
  for (const [s, t] of out.opts ?? []) named.set(optimizerState(s), t);
  return named;
}

/** Cotangents of a call's outputs, in the `run` convention; zeros where none were given. */
export interface InnerLoopCotangents {
  /** [B, H, T, ...output]. */
  output: Tensor;
  /** [B, H, ...] each. */
  states: Map<string, Tensor>;
  accums: Map<string, Tensor>;
  /** [B, H, ...] each, by state name: cotangents of a rule's optimizer states. */
  opts: Map<string, Tensor>;
}

/** Gradients of a call's inputs: the shapes of `InnerLoopInputs` (states and accumulators per sequence). */
export interface InnerLoopGradients {
  views: Map<string, Tensor>;
  lr?: Tensor;
  scale?: Tensor;
  /** [H, ...] each: summed over the sequences. */
  params: Map<string, Tensor>;
  /** [B, H, ...] each. */
  states: Map<string, Tensor>;
  accums: Map<string, Tensor>;
  /** A rule's per-token inputs [B, H, T] (`lr.S`, `decay`, `momentum`), by name. */
  tokens: Map<string, Tensor>;
  /** A rule's optimizer states [B, H, ...], by state name. */
  opts: Map<string, Tensor>;
}

/**
 * Gather and check cotangents from named tensors: `output` (required), optional `state.NAME`,
 * `accum.NAME` and `opt.NAME`. Errors name the tensor and both shapes; an unknown name is an error.
 */
export function innerLoopCotangents(
  sig: KernelSignature,
  inputs: InnerLoopInputs,
  named: ReadonlyMap<string, Tensor>,
): InnerLoopCotangents {
  const { B, H, T } = inputs;
  const check = (name: string, t: Tensor | undefined, shape: readonly number[]): Tensor => {
    if (!t) throw new InputError(`missing cotangent '${name}' (expected shape ${showShape(shape)})`);
    if (!same(t.shape, shape))
      throw new InputError(`cotangent '${name}' has shape ${showShape(t.shape)}, expected ${showShape(shape)}`);
    return t;
  };
  const states = statePorts(sig);
  const optimized = states.filter((s) => sig.rule?.optimizerStates.includes(s.name));
  const perHead = (key: (name: string) => string, ports: readonly Port[]) =>
    new Map(
      ports.map((s) => {
        const shape = [B, H, ...s.shape];
        const t = named.get(key(s.name));
        return [s.name, t ? check(key(s.name), t, shape) : { shape, data: new Float64Array(size(shape)) }];
      }),
    );
  const stateKey = (name: string) => runKey({ role: 'state', name });
  const accumKey = (name: string) => runKey({ role: 'accum', name });
  const output = outputPort(sig);
  const known = new Set([
    runKey(output),
    ...states.flatMap((s) => [stateKey(s.name), accumKey(s.name)]),
    ...optimized.map((s) => optimizerState(s.name)),
  ]);
  for (const name of named.keys())
    if (!known.has(name))
      throw new InputError(
        `unknown cotangent '${name}': expected output, state.NAME, accum.NAME or opt.NAME of the spec's states`,
      );
  return {
    output: check(runKey(output), named.get(runKey(output)), [B, H, T, ...output.shape]),
    states: perHead(stateKey, states),
    accums: perHead(accumKey, states),
    opts: perHead(optimizerState, optimized),
  };
}

/** Sum a [B, H, ...] tensor over B. */
function sumOverBatch(t: Tensor): Tensor {
  const [B, ...rest] = t.shape;
  const n = size(rest);
  const data = new Float64Array(n);
  for (let b = 0; b < B; b++) for (let i = 0; i < n; i++) data[i] += t.data[b * n + i];
  return { shape: rest, data };
}

/**
 * The named tensors `grad.NAME` for every differentiable tensor NAME of the named inputs, each
 * shaped like that input: a state given per head [H, ...] gets its gradient summed over B, and
 * accumulators and optimizer states get one only when they were given.
 */
export function gradientTensors(grads: InnerLoopGradients, named: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  const grad = (role: Port['role'], name: string) => runKey({ role, name, grad: true });
  for (const [v, t] of grads.views) out.set(grad('view', v), t);
  if (grads.lr) out.set(grad('rate', 'lr'), grads.lr);
  if (grads.scale) out.set(grad('scale', 'scale'), grads.scale);
  for (const [p, t] of grads.params) out.set(grad('param', p), t);
  for (const [s, t] of grads.states) {
    const given = named.get(runKey({ role: 'state', name: s }))!;
    out.set(grad('state', s), given.shape.length < t.shape.length ? sumOverBatch(t) : t);
  }
  for (const [s, t] of grads.accums) if (named.has(runKey({ role: 'accum', name: s }))) out.set(grad('accum', s), t);
  for (const [n, t] of grads.tokens) out.set(`grad.${n}`, t);
  for (const [s, t] of grads.opts) if (named.has(optimizerState(s))) out.set(`grad.${optimizerState(s)}`, t);
  return out;
}
