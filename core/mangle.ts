/**
 * The one spelling of ports as names, for every consumer. Identifiers (CUDA, WGSL, C, Python,
 * TypeScript) are a role prefix and the spec's name; the prefixes form a prefix-free set, so no
 * two ports share an identifier whatever the spec names them (`W` and `out_W` give `state_W`,
 * `out_state_W` and `out_state_out_W`), and none is a keyword or a kernel's own local. Run-file
 * keys are the `run` convention's tensor names (README: "The run convention").
 */
import type { Port, Role } from './signature.ts';
import { DECAY_INPUT, MOMENTUM_INPUT, optimizerState, stateRateInput } from './update-rule.ts';

/** Identifier prefixes by role and direction; a nameless role is spelt by the fixed word alone. */
const IDENTIFIER: Record<Role, { in: string; out: string; named: boolean }> = {
  view: { in: 'view_', out: 'out_view_', named: true },
  rate: { in: 'lr', out: 'out_lr', named: false },
  scale: { in: 'scale', out: 'out_scale', named: false },
  param: { in: 'param_', out: 'out_param_', named: true },
  state: { in: 'state_', out: 'out_state_', named: true },
  accum: { in: 'accum_', out: 'out_accum_', named: true },
  output: { in: 'output', out: 'output', named: false },
  'state-rate': { in: 'lr_', out: 'out_lr_', named: true },
  decay: { in: 'decay', out: 'out_decay', named: false },
  momentum: { in: 'momentum', out: 'out_momentum', named: false },
  opt: { in: 'opt_', out: 'out_opt_', named: true },
  // One tensor, written by the checkpointing forward and read by the backward: one name for both.
  checkpoint: { in: 'checkpoints', out: 'checkpoints', named: false },
};

/** The port's identifier in generated code: `view_q`, `lr`, `param_gamma`, `out_state_W1`, ... */
export function identifier(p: Port): string {
  const spelling = IDENTIFIER[p.role];
  const base = `${spelling[p.io]}${spelling.named ? p.name : ''}`;
  return p.grad ? `grad_${base}` : base;
}

/** The constant that names a spec dim in generated code (the call's own `H`, `T` stay apart). */
export const dimConstant = (dim: string): string => `dim_${dim}`;

/** Run-file names that mean something of their own: a view so named is given as `view.NAME`. */
export const RESERVED_RUN_KEYS: ReadonlySet<string> = new Set([
  'lr',
  'scale',
  'start',
  'output',
  DECAY_INPUT,
  MOMENTUM_INPUT,
]);

/**
 * The port's name in the `run` convention's tensor files: views by name (`view.NAME` when the name
 * is reserved), `lr`, `scale`, `param.NAME`, `state.NAME`, `accum.NAME`, `output`, and a rule's
 * `lr.NAME`, `decay`, `momentum`, `opt.NAME`.
 */
export function runKey(p: Pick<Port, 'role' | 'name' | 'grad'>): string {
  const base = p.role === 'view' && !RESERVED_RUN_KEYS.has(p.name) ? p.name : programKey(p);
  return p.grad ? `grad.${base}` : base;
}

/** Every name a run file may give the port under: views also as `view.NAME`. */
export function runKeys(p: Port): string[] {
  const key = runKey(p);
  const long = `${p.grad ? 'grad.' : ''}view.${p.name}`;
  return p.role === 'view' && key !== long ? [key, long] : [key];
}

/**
 * The mini-batch program input a port feeds: its program key, or for a cotangent port (a
 * backward's `grad` input) `cotangent.` and that key, as compiler/backward/derive.ts names them.
 */
export const chunkInputKey = (p: Pick<Port, 'role' | 'name' | 'grad'>): string =>
  p.grad ? `cotangent.${programKey(p)}` : programKey(p);

/** The port as the mini-batch program's inputs and outputs name it: `view.q`, `lr`, `state.W1`, ... */
export function programKey(p: Pick<Port, 'role' | 'name'>): string {
  switch (p.role) {
    case 'rate':
      return 'lr';
    case 'scale':
    case 'output':
      return p.role;
    case 'state-rate':
      return stateRateInput(p.name);
    case 'decay':
      return DECAY_INPUT;
    case 'momentum':
      return MOMENTUM_INPUT;
    case 'opt':
      return optimizerState(p.name);
    default:
      return `${p.role}.${p.name}`;
  }
}
