/**
 * The inner loop's data, in the `run` convention shared by every backend:
 * views [B, H, T, ...], `lr` [B, H, T], `scale` [K], params [H, ...], states [B, H, ...] or
 * [H, ...] (broadcast over B), optional accumulators [B, H, ...], and a start position in [0, K).
 */
import { showShape, size } from '../core/shape.ts';
import { asF64, type Tensor, type TensorInput } from '../core/tensor.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, optimizerState, type UpdateRuleSignature } from '../core/update-rule.ts';
import type { InnerLoopSignature } from './signature.ts';

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

/**
 * Gather and check the inner loop's inputs from named tensors (`q`, `lr`, `param.gamma`,
 * `state.W1`, `accum.W1`, `start`, ...). Errors name the tensor and both shapes.
 */
export function innerLoopInputs(sig: InnerLoopSignature, given: ReadonlyMap<string, TensorInput>): InnerLoopInputs {
  const named = new Map([...given].map(([name, t]) => [name, asF64(t)]));
  const first = sig.views[0];
  const probe = named.get(first.name);
  if (!probe)
    throw new InputError(
      `missing input tensor '${first.name}' (a view of the spec, shape [B, H, T, ${first.shape.join(', ')}])`,
    );
  if (probe.shape.length !== 3 + first.shape.length)
    throw new InputError(
      `input tensor '${first.name}' has shape ${showShape(probe.shape)}, expected [B, H, T, ${first.shape.join(', ')}]`,
    );
  const [B, H, T] = probe.shape;
  const views = new Map(sig.views.map((v) => [v.name, expect(v.name, named.get(v.name), [B, H, T, ...v.shape])]));
  const lr = sig.lr.kind === 'token' ? expect('lr', named.get('lr'), [B, H, T]) : undefined;
  const scale = sig.scale.kind === 'position' ? expect('scale', named.get('scale'), [sig.K]) : undefined;
  const params = new Map(
    sig.params.map((p) => [p.name, expect(`param.${p.name}`, named.get(`param.${p.name}`), [H, ...p.shape])]),
  );
  const states = new Map<string, Tensor>();
  const accums = new Map<string, Tensor>();
  for (const s of sig.states) {
    const key = `state.${s.name}`;
    const t = named.get(key);
    states.set(
      s.name,
      t && t.shape.length === s.shape.length + 1
        ? broadcastOverBatch(expect(key, t, [H, ...s.shape]), B)
        : expect(key, t, [B, H, ...s.shape]),
    );
    const a = named.get(`accum.${s.name}`);
    accums.set(
      s.name,
      a
        ? expect(`accum.${s.name}`, a, [B, H, ...s.shape])
        : { shape: [B, H, ...s.shape], data: new Float64Array(B * H * size(s.shape)) },
    );
  }
  const rule = sig.rule && ruleInputs(sig, sig.rule, named, B, H, T);
  const startTensor = named.get('start');
  const start = startTensor ? startTensor.data[0] : 0;
  if (startTensor && size(startTensor.shape) !== 1)
    throw new InputError(`input tensor 'start' has shape ${showShape(startTensor.shape)}, expected [] or [1]`);
  if (!Number.isInteger(start) || start < 0 || start >= sig.K)
    throw new InputError(`start position ${start} is not an integer in [0, ${sig.K})`);
  if (sig.rule?.read === 'after' && start !== 0)
    throw new InputError(
      `start position ${start}: with read order 'after' a token reads the end of its mini-batch, so calls start at a mini-batch boundary (start 0)`,
    );
  return { B, H, T, start, views, lr, scale, params, states, accums, ...rule };
}

/** The per-token inputs and optimizer states of a rule beyond plain sgd. */
function ruleInputs(
  sig: InnerLoopSignature,
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
    const shape = [B, H, ...sig.states.find((t) => t.name === s)!.shape];
    const given = named.get(optimizerState(s));
    opts.set(s, given ? expect(optimizerState(s), given, shape) : { shape, data: new Float64Array(size(shape)) });
  }
  return { tokens, opts };
}

/** The named tensors a backend writes: `output`, `state.S`, `accum.S`. */
export function innerLoopOutputTensors(out: InnerLoopOutputs): Map<string, Tensor> {
  const named = new Map<string, Tensor>([['output', out.output]]);
  for (const [s, t] of out.states) named.set(`state.${s}`, t);
  for (const [s, t] of out.accums) named.set(`accum.${s}`, t);
  for (const [s, t] of out.opts ?? []) named.set(optimizerState(s), t);
  return named;
}

/**
 * The chunks a call walks: `count` tokens from token `token` on, at mini-batch positions
 * [position, position + count), in the first `count` rows of the mini-batch program.
 */
export interface Chunk {
  token: number;
  position: number;
  count: number;
  /** The chunk reaches the mini-batch's last row, so the state commits after it. */
  ends: boolean;
}

/** Chunks of at most `rows` tokens that never cross a mini-batch boundary. */
export function chunks(start: number, T: number, K: number, rows: number): Chunk[] {
  const out: Chunk[] = [];
  let position = start;
  for (let token = 0; token < T;) {
    const count = Math.min(rows, K - position, T - token);
    out.push({ token, position, count, ends: position + count === K });
    token += count;
    position = (position + count) % K;
  }
  return out;
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
 * Gather and check cotangents from named tensors: `output` (required), optional `state.NAME`
 * and `accum.NAME`. Errors name the tensor and both shapes; an unknown name is an error.
 */
export function innerLoopCotangents(
  sig: InnerLoopSignature,
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
  const perHead = (prefix: string, states = sig.states) =>
    new Map(
      states.map((s) => {
        const shape = [B, H, ...s.shape];
        const t = named.get(`${prefix}.${s.name}`);
        return [s.name, t ? check(`${prefix}.${s.name}`, t, shape) : { shape, data: new Float64Array(size(shape)) }];
      }),
    );
  const optimized = sig.states.filter((s) => sig.rule?.optimizerStates.includes(s.name));
  const known = new Set([
    'output',
    ...sig.states.flatMap((s) => [`state.${s.name}`, `accum.${s.name}`]),
    ...optimized.map((s) => optimizerState(s.name)),
  ]);
  for (const name of named.keys())
    if (!known.has(name))
      throw new InputError(
        `unknown cotangent '${name}': expected output, state.NAME, accum.NAME or opt.NAME of the spec's states`,
      );
  return {
    output: check('output', named.get('output'), [B, H, T, ...sig.output]),
    states: perHead('state'),
    accums: perHead('accum'),
    opts: perHead('opt', optimized),
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
 * accumulators get one only when they were given.
 */
export function gradientTensors(grads: InnerLoopGradients, named: ReadonlyMap<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [v, t] of grads.views) out.set(`grad.${v}`, t);
  if (grads.lr) out.set('grad.lr', grads.lr);
  if (grads.scale) out.set('grad.scale', grads.scale);
  for (const [p, t] of grads.params) out.set(`grad.param.${p}`, t);
  for (const [s, t] of grads.states)
    out.set(`grad.state.${s}`, named.get(`state.${s}`)!.shape.length < t.shape.length ? sumOverBatch(t) : t);
  for (const [s, t] of grads.accums) if (named.has(`accum.${s}`)) out.set(`grad.accum.${s}`, t);
  for (const [n, t] of grads.tokens) out.set(`grad.${n}`, t);
  for (const [s, t] of grads.opts) if (named.has(optimizerState(s))) out.set(`grad.${optimizerState(s)}`, t);
  return out;
}
