/**
 * Which update rules the fused-kernel targets (WGSL, CUDA, the TS module that embeds WGSL) render.
 * Their kernels render any chunk program, bind every port of the kernel signature (a rule's
 * per-token inputs and carried optimizer states included) and run one-row programs for decode; a
 * program they cannot walk chunk by chunk is refused with a diagnostic naming its parts and the
 * target, never rendered into a kernel that would compute something else. The f64 reference and
 * the IR target run every rule.
 */
import type { CheckedUpdateRule } from '../check/checked.ts';
import { diag } from '../diagnostics/codes.ts';
import { CompileError, type Diagnostic } from '../diagnostics/diagnostic.ts';
import type { ChunkProgram } from '../dualform/derive.ts';

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
 * The parts of a chunk program the kernels cannot walk: `read: after` in chunks of fewer rows than
 * the mini-batch, whose outputs read the end of a mini-batch the chunk has not seen yet (the
 * committed state a chunk computes is the one at its own end). A whole-mini-batch chunk renders.
 */
function unrendered(chunk: ChunkProgram): string[] {
  return chunk.layer.update.rules.read === 'after' && chunk.rows < chunk.K
    ? [`read: after in chunks of ${chunk.rows} rows (the mini-batch has ${chunk.K})`]
    : [];
}

/** The diagnostic refusing `chunk` for a kernel target, or undefined when the target renders it. */
export function kernelRuleRefusal(chunk: ChunkProgram, target: string): Diagnostic | undefined {
  const parts = unrendered(chunk);
  if (parts.length === 0) return undefined;
  return diag('TTT601', chunk.layer.update.span, `the ${target} target does not render ${parts.join(', ')}`);
}

export function assertKernelRenders(chunk: ChunkProgram, target: string): void {
  const refusal = kernelRuleRefusal(chunk, target);
  if (refusal) throw new CompileError([refusal]);
}
