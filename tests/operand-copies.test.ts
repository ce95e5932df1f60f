/**
 * Views' bf16 copies for tensor-core operands in the training kernels: on every example and rule
 * example's bf16 checkpointing and backward kernels, sm_80 and sm_90, each copy lies apart from
 * everything live beside it (tests/support/copies.ts; tests/cuda-prefetch.test.ts checks the
 * forward kernels, random rule specs included). The end-to-end runs of
 * tests/cuda-mma-kernels.test.ts and tests/cuda-mma-backward.test.ts check what the copies compute.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileSpec } from '../compiler/pipeline.ts';
import type { ScheduledKernel } from '../compiler/schedule/kernel.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { expectCopiesApart } from './support/copies.ts';
import { compileExample, repoRoot } from './support/specs.ts';

const specs = ['examples', 'examples/rules'].flatMap((d) =>
  readdirSync(join(repoRoot, d))
    .filter((f) => f.endsWith('.ttt'))
    .sort()
    .map((f) => join(d, f)),
);

const compiled = (spec: string) => {
  const r = compileSpec(readFileSync(join(repoRoot, spec), 'utf8'), { file: spec });
  if (!r.ok) throw new Error(`${spec} does not compile`);
  return r.compiled;
};

describe("views' copies in the training kernels lie apart from everything live beside them", () => {
  it.each(specs)('%s', (spec) => {
    const c = compiled(spec);
    for (const arch of ['sm_80', 'sm_90'] as const)
      for (const [which, k] of Object.entries(renderCudaBackward(c, { arch, dtype: 'bf16' }).kernels))
        expectCopiesApart(k, `${spec} ${arch} ${which}`);
  });
});

it('TTT-Linear keeps copies of k and q, in the prefill and the training kernels', () => {
  const c = compiled('examples/ttt_linear.ttt');
  const options = { arch: 'sm_90', dtype: 'bf16' } as const;
  const viewsCopied = (k: ScheduledKernel) =>
    [...(k.tensorCores?.copies?.keys() ?? [])].map((id) => {
      const op = k.program.nodes[id].op;
      return op.kind === 'input' ? op.name : `%${id}`;
    });
  expect(viewsCopied(renderCuda(c, options).kernel).sort()).toEqual(['view.k', 'view.q']);
  for (const k of Object.values(renderCudaBackward(c, options).kernels))
    expect(viewsCopied(k).length).toBeGreaterThan(0);
});

describe('copies that do not fit leave the products on tensor cores', () => {
  // Where the copies fit nowhere, the kernel is weighed without them: more room never takes a
  // kernel's products off tensor cores. (Before, a kernel whose copies did not fit fell back to no
  // tensor cores at all: TTT-Linear below 20 KB of shared memory on sm_90.)
  it.each(['ttt_linear.ttt', 'delta_rule.ttt', 'gated_linear.ttt'])('%s, sm_90, 12 to 40 KB a block', (spec) => {
    const c = compileExample(spec);
    const limits = archOf('sm_90').limits;
    const onTensorCores: boolean[] = [];
    for (let kb = 12; kb <= 40; kb += 2)
      onTensorCores.push(
        scheduleWithTensorCores(c.chunk, { ...limits, workgroupBytes: kb * 1024 }).tensorCores !== undefined,
      );
    const first = onTensorCores.indexOf(true);
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first, 'the least room with tensor cores (12 KB + 2 KB steps)').toBeLessThanOrEqual((16 - 12) / 2);
    expect(onTensorCores.slice(first).every((x) => x)).toBe(true);
  });
});
