/**
 * Shared-memory bank conflicts per generated kernel, static (no GPU): every example's prefill and
 * decode kernels for WGSL and for CUDA (sm_80, f32 and bf16 operands), as compiler/kernel/banks.ts
 * measures them from the kernel IR, with every on-chip buffer row-major and with the chosen
 * layouts: the worst conflict degree and the average wavefronts per request of a 32-lane warp.
 *
 *   npx tsx bench/banks.ts [-- --json build/banks.json]
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { KernelFeatures } from '../compiler/kernel/features.ts';
import { lowerKernel } from '../compiler/kernel/lower.ts';
import type { OnChipLayout } from '../compiler/kernel/ir.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import type { TargetLimits } from '../compiler/schedule/kernel.ts';
import { kernelRuleRefusal } from '../compiler/schedule/rule-support.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { CUDA_FEATURES } from '../targets/cuda/kernel.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';

const root = resolve(import.meta.dirname, '..');
const jsonArg = process.argv.indexOf('--json');

/** How each target schedules and lowers a variant. */
const TARGETS: { name: string; limits: TargetLimits; tensorCores: boolean; features: KernelFeatures }[] = [
  { name: 'wgsl', limits: WEBGPU_DEFAULT_LIMITS, tensorCores: false, features: {} },
  { name: 'cuda sm_80 f32', limits: archOf('sm_80').limits, tensorCores: false, features: CUDA_FEATURES },
  { name: 'cuda sm_80 bf16', limits: archOf('sm_80').limits, tensorCores: true, features: CUDA_FEATURES },
];

export interface BankRow extends OnChipLayout {
  example: string;
  target: string;
  variant: string;
}

/** The bank figures of every example's kernels. */
export function bankRows(): BankRow[] {
  const specs = ['examples', 'examples/rules'].flatMap((d) =>
    readdirSync(join(root, d))
      .filter((f) => f.endsWith('.ttt'))
      .sort()
      .map((f) => join(d, f)),
  );
  const rows: BankRow[] = [];
  for (const spec of specs) {
    const source = readFileSync(join(root, spec), 'utf8');
    const checked = compileSpec(source, { file: basename(spec) });
    // Specs the fused kernels do not render (a refusal from the checker or the scheduler) are left out.
    if (!checked.ok || kernelRuleRefusal(checked.compiled.chunk, 'fused-kernel')) continue;
    const c = checked.compiled;
    for (const t of TARGETS)
      for (const v of c.variants) {
        const k = (t.tensorCores ? scheduleWithTensorCores : schedule)(v.chunk, t.limits);
        const lowered = lowerKernel(k, c.signature, source.split('\n'), t.features);
        rows.push({ example: spec, target: t.name, variant: v.name, ...lowered.onChip });
      }
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = bankRows();
  const pad = (s: string | number, n: number) => String(s).padEnd(n);
  console.log(
    `${pad('example', 34)}${pad('target', 17)}${pad('variant', 9)}worst (row-major -> chosen)  wavefronts/request            swizzled buffers`,
  );
  for (const r of rows)
    console.log(
      `${pad(r.example, 34)}${pad(r.target, 17)}${pad(r.variant, 9)}${pad(`${r.rowMajor.worst} -> ${r.chosen.worst}`, 29)}${pad(`${r.rowMajor.wavefrontsPerRequest.toFixed(2)} -> ${r.chosen.wavefrontsPerRequest.toFixed(2)}`, 30)}${r.swizzles.map((s) => `${s.buffer}:${s.width}${s.step > 1 ? `x${s.step}` : ''}`).join(' ')}`,
    );
  if (jsonArg > 0) {
    const out = resolve(root, process.argv[jsonArg + 1]);
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(rows, null, 2));
  }
}
