/**
 * The one place that names the tensors the update rules of semantics.md §6 add, for every layer
 * of the pipeline: the chunk program's inputs and outputs and the run files use the same names.
 *
 * - `lr.S` [B, H, T]: state S's own per-token rate (`lr S: token` in the update's block).
 * - `decay` [B, H, T]: per-token retention d_t (`decay: token`).
 * - `momentum` [B, H, T]: per-token momentum η_t (`momentum: token`).
 * - `opt.S` [B, H, ...S]: state S's optimizer state u (with momentum), carried like the state:
 *   an input and an output of every call.
 */

/** Which state a token's output reads: θ_i (causal), the mini-batch's start (before), its end (after). */
export type ReadOrder = 'causal' | 'before' | 'after';

export const DECAY_INPUT = 'decay';
export const MOMENTUM_INPUT = 'momentum';

/** The per-token rate of state `state` when it has one of its own. */
export const stateRateInput = (state: string): string => `lr.${state}`;

/** The optimizer state (momentum's u) of state `state`. */
export const optimizerState = (state: string): string => `opt.${state}`;

/** Newton–Schulz iterations of `orthogonalize` when `steps` is not given, and the most allowed. */
export const DEFAULT_NEWTON_SCHULZ_STEPS = 5;
export const MAX_NEWTON_SCHULZ_STEPS = 20;

/** What the runtime needs to know of a rule beyond plain sgd: the extra tensors it reads and carries. */
export interface UpdateRuleSignature {
  /** Per-token [B, H, T] inputs beyond `lr`, by name: `lr.S`, `decay`, `momentum`. */
  tokenInputs: readonly string[];
  /** States that carry an optimizer state `opt.S` of their own shape. */
  optimizerStates: readonly string[];
  read: ReadOrder;
}
