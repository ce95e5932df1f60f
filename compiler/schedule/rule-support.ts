/**
 * Which update rules the fused-kernel targets (WGSL, CUDA, the TS module that embeds WGSL) render.
 * Their kernels render any chunk program, bind every port of the kernel signature (a rule's
 * per-token inputs and carried optimizer states included) and run one-row programs for decode; a
 * rule they cannot walk chunk by chunk is refused with a diagnostic naming its parts and the
 * target, never rendered into a kernel that would compute something else. The f64 reference and
 * the IR target run every rule.
 */
import type { CheckedLayer, CheckedUpdateRule } from '../check/checked.ts';
import { diag } from '../diagnostics/codes.ts';
import { CompileError, type Diagnostic } from '../diagnostics/diagnostic.ts';

/** The parts of a rule beyond plain sgd, in the spec's words. */
export function ruleFeatures(rule: CheckedUpdateRule): string[] {
  const features: string[] = [];
  const own = [...rule.rates].filter(([, r]) => r.input !== 'lr').map(([s]) => s);
  if (own.length) features.push(`rates per state (${own.map((s) => `lr ${s}`).join(', ')})`);
  if (rule.decay) features.push(`decay: ${rule.decay.kind === 'token' ? 'token' : rule.decay.value}`);
  if (rule.momentum) features.push(`momentum: ${rule.momentum.kind === 'token' ? 'token' : rule.momentum.value}`);
  if (rule.read !== 'causal') features.push(`read: ${rule.read}`);
  for (const s of rule.commits.keys()) features.push(`commit ${s}`);
  for (const s of rule.orthogonalize.keys()) features.push(`orthogonalize ${s}`);
  return features;
}

/**
 * The parts of a rule the kernels cannot render: `read: after`, whose outputs read the end of
 * their mini-batch, so a chunk would need tokens it has not seen yet.
 */
function unrendered(rule: CheckedUpdateRule): string[] {
  return rule.read === 'after' ? ['read: after'] : [];
}

/** The diagnostic refusing `layer` for a kernel target, or undefined when the target renders its rule. */
export function kernelRuleRefusal(layer: CheckedLayer, target: string): Diagnostic | undefined {
  const parts = unrendered(layer.update.rules);
  if (parts.length === 0) return undefined;
  return diag('TTT601', layer.update.span, `the ${target} target does not render ${parts.join(', ')} yet`);
}

export function assertKernelRenders(layer: CheckedLayer, target: string): void {
  const refusal = kernelRuleRefusal(layer, target);
  if (refusal) throw new CompileError([refusal]);
}
