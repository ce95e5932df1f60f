/**
 * How the sequence layer produces an update rule's per-token inputs (core/update-rule.ts): each
 * one a learned gate of the token's hidden state, per head, as the layer's own lr is:
 *
 *   lr.S_t     = base_lr · σ(x_t·w_h + c_h) / D   (the lr's form, so a rate per state is a rate)
 *   decay_t    = σ(x_t·w_h + c_h)                 (a retention in (0, 1), Gated DeltaNet's α_t)
 *   momentum_t = σ(x_t·w_h + c_h)                 (a momentum in (0, 1), Titans' η_t)
 *
 * with w = `STEM.weight` [H, C] and c = `STEM.bias` [H], the stem `rule.NAME` unless the weight-name
 * map gives another. A rule input the spec gives as a constant is no input of the kernel, so it
 * needs no weights.
 */
import { stateRateInput } from '../../core/update-rule.ts';

/** The stem of a per-token input's gate weights when the weight-name map gives none. */
export const defaultRuleGateStem = (input: string): string => `rule.${input}`;

/** The weight names of a gate with this stem. */
export function ruleGateWeightNames(stem: string): { weight: string; bias: string } {
  return { weight: `${stem}.weight`, bias: `${stem}.bias` };
}

/** The factor in front of σ for a per-token input: base_lr / D for a state's rate, 1 for a gate in (0, 1). */
export function ruleGateScale(input: string, baseLr: number, headDim: number): number {
  return input.startsWith(stateRateInput('')) ? baseLr / headDim : 1;
}
