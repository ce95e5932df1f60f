/**
 * The kernel signature: the tensors one call of a compiled inner loop reads and writes, each a
 * port with a role, a name, leading call axes and a shape. Derived once per compiled variant
 * (compiler/signature.ts); every consumer (renderers, launchers, bindings, manifests, the
 * runtime's run convention) reads ports from here and spells them with core/mangle.ts, so none
 * parses names back into roles. Plain JSON, so generated modules can embed it.
 */
import type { Shape } from './shape.ts';
import type { UpdateRuleSignature } from './update-rule.ts';

/**
 * What a port carries. `rate` is the per-token inner learning rate (`lr: token`), `scale` the
 * per-position scale_i (`scale: position`), `accum` the decode accumulator carried between calls.
 * Backward variants add cotangent ports (`grad`), update rules with optimizer states add
 * per-state ports of their own role; the mangler gives each role a prefix of its own.
 */
export type Role =
  | 'view'
  | 'rate'
  | 'scale'
  | 'param'
  | 'state'
  | 'accum'
  | 'output'
  /** An update rule's per-token inputs (core/update-rule.ts): a state's own rate, named by the state. */
  | 'state-rate'
  | 'decay'
  | 'momentum'
  /** An update rule's optimizer state, named by its state: carried between calls like the accumulator. */
  | 'opt'
  /**
   * What a chunk starts from (states, accumulators, optimizer states, packed as core/packing.ts
   * packs them per sequence-head), saved by the forward for the backward, per chunk of the call.
   */
  | 'checkpoint';

/** The leading, call-dependent axes of a tensor: sequences, heads, tokens, and the chunks a call walks. */
export type Axis = 'C' | 'B' | 'H' | 'T';

export interface Port {
  role: Role;
  /** The spec's name for views, params and states; the role itself for the rest. */
  name: string;
  /** `in`: read by the call; `out`: written by it (states and accumulators are both). */
  io: 'in' | 'out';
  /** The cotangent of the port with this role and name (backward variants). */
  grad?: true;
  lead: readonly Axis[];
  /** The shape after the leading axes. */
  shape: Shape;
  /**
   * Stored in global memory as bf16 (`io: 'bf16'`, CUDA; marked by `withIo`): widened to f32 where
   * read, rounded to nearest even where written. Absent: f32.
   */
  bf16?: true;
}

export type Rate = { kind: 'token' } | { kind: 'constant'; value: number };
export type Scale = { kind: 'position' } | { kind: 'none' } | { kind: 'constant'; value: number };

export interface KernelSignature {
  /** The spec's `layer NAME`. */
  layer: string;
  /** The mini-batch size. */
  K: number;
  /** How the inner loop learns: an `lr` per token or a constant, and its scale_i. */
  lr: Rate;
  scale: Scale;
  /** In call order: views, rate, a rule's per-token inputs, scale, params, states, accumulators, optimizer states. */
  inputs: readonly Port[];
  /** In call order: output, states, accumulators, optimizer states. */
  outputs: readonly Port[];
  /** A rule beyond plain sgd: its extra per-token inputs and optimizer states. Absent for plain sgd. */
  rule?: UpdateRuleSignature;
}

const withRole = (ports: readonly Port[], role: Role) => ports.filter((p) => p.role === role);

export const viewPorts = (s: KernelSignature) => withRole(s.inputs, 'view');
export const paramPorts = (s: KernelSignature) => withRole(s.inputs, 'param');
export const statePorts = (s: KernelSignature) => withRole(s.inputs, 'state');
export const outputPort = (s: KernelSignature): Port => withRole(s.outputs, 'output')[0];
export const ratePort = (s: KernelSignature): Port | undefined => withRole(s.inputs, 'rate')[0];
export const scalePort = (s: KernelSignature): Port | undefined => withRole(s.inputs, 'scale')[0];

/** The per-token [B, H, T] inputs of an update rule: per-state rates, decay, momentum. */
export const ruleTokenPorts = (s: KernelSignature) =>
  s.inputs.filter((p) => p.role === 'state-rate' || p.role === 'decay' || p.role === 'momentum');

/**
 * How a call's tensors are stored in global memory: `f32`, or `bf16` for the per-token views and
 * the output, the tensors whose bytes grow with T and bound a long call; everything else stays f32.
 */
export type Io = 'f32' | 'bf16';

/**
 * The roles stored as bf16 under `io: 'bf16'`. The per-token lr and a rule's rates, decay and
 * momentum stay f32: each is one value per token (4 of TTT-Linear's 1,028 bytes per token at
 * D = 64), and a decay or momentum near 1 would lose its meaning (bf16's spacing below 1 is 2^-8:
 * a retention of 0.999 rounds to 1).
 *
 * A backward's cotangent or gradient port (`grad`) is stored as the port it belongs to: the
 * output's cotangent and the views' gradients are bf16, as autograd hands and expects them for
 * bf16 tensors (a gradient has its tensor's dtype). Each view gradient row is written once, from
 * f32, so it is rounded once. The gradients of states, params, the scale and the rates stay f32,
 * as those tensors do; the params' and the scale's are sums over tokens, which bf16 would lose.
 */
const BF16_IO_ROLES: ReadonlySet<Role> = new Set(['view', 'output']);

/**
 * The ports, with those that `io` stores as bf16 marked: the one place that decides it, for the
 * forward's ports and the training kernels' (compiler/backward/signature.ts) alike; the kernel
 * parameters, launchers, headers, bindings, CPU runtime and report read the mark.
 */
export const withIo = (ports: readonly Port[], io: Io): Port[] =>
  ports.map((p) => (io === 'bf16' && BF16_IO_ROLES.has(p.role) ? { ...p, bf16: true } : p));

/** Bytes of one element of the port in global memory. */
export const elementBytes = (p: Port): number => (p.bf16 ? 2 : 4);

/** Every port, inputs then outputs: the order of kernel parameters and launcher fields. */
export const allPorts = (s: KernelSignature): Port[] => [...s.inputs, ...s.outputs];

/** The port's full shape, leading axes by name: `[B, H, T, 64]`, for comments and messages. */
export const showPortShape = (p: Port): string => `[${[...p.lead, ...p.shape].join(', ')}]`;
