/**
 * `tttc compile --target cuda --report`: every kernel of the forward and the fused backward, read
 * back from the generated files. Its barriers per mini-batch must be those the scheduler placed
 * (counted from the scheduled kernels, not the text), its dynamic shared memory and global scratch
 * the scheduler's,
 * and with nvcc (which .ci/run puts on PATH) its registers and instruction counts ptxas's and
 * the PTX's; without nvcc it says so and still reports the rest.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { acrossWarps } from '../compiler/schedule/barriers.ts';
import type { ScheduledKernel } from '../compiler/schedule/kernel.ts';
import { prefetchBarriers } from '../compiler/schedule/prefetch.ts';
import type { CudaReport } from '../cli/cuda-report.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { launches } from '../targets/cuda/readback.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { tttc } from './support/cli.ts';
import { compileExample, repoRoot } from './support/specs.ts';

const spec = join(repoRoot, 'examples', 'ttt_linear.ttt');
const out = () => mkdtempSync(join(tmpdir(), 'tttc-report-'));

/** The prefill and training kernels the scheduler laid out, by the names the generated code gives them. */
function scheduled(): Map<string, ScheduledKernel> {
  const c = compileExample('ttt_linear.ttt');
  const options = { arch: 'sm_90', dtype: 'bf16' } as const;
  const forward = renderCuda(c, options);
  const backward = renderCudaBackward(c, options);
  return new Map([
    [forward.api.kernel, forward.kernel],
    [backward.api.decodeKernel, backward.kernels.checkpoints],
    [backward.api.kernel, backward.kernels.backward],
  ]);
}

describe('tttc compile --report', () => {
  it("reports every kernel with the scheduler's barriers and shared memory, and nvcc's registers", async () => {
    const r = await tttc('compile', spec, '--target', 'cuda', '--dtype', 'bf16', '--report', '--json', '--out', out());
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out).report as CudaReport;
    expect('version' in report.nvcc).toBe(true);
    const names = report.kernels.map((k) => k.kernel);
    expect(names).toEqual([
      'tttc_ttt_linear_decode_kernel',
      'tttc_ttt_linear_kernel',
      'tttc_ttt_linear_checkpoints_kernel',
      'tttc_ttt_linear_backward_kernel',
    ]);
    for (const [name, k] of scheduled()) {
      const got = report.kernels.find((x) => x.kernel === name)!;
      expect(got.barriers.perMinibatch, name).toBe(k.barriers.filter(acrossWarps).length + prefetchBarriers(k));
      expect(got.dynamicSharedBytes, name).toBe(k.workgroupFloats * 4);
      expect(got.scratchBytes, name).toBe(k.scratchFloats * 4);
      expect(got.threads, name).toBe(k.invocations);
      expect(got.nvcc!.registers, name).toBeGreaterThan(0);
      expect(got.nvcc!.spillStores + got.nvcc!.spillLoads, name).toBe(0);
      // bf16 products on tensor cores: mma in the PTX wherever the scheduler planned them.
      expect(got.nvcc!.ptx.mma > 0, name).toBe(k.tensorCores !== undefined);
      expect(got.occupancy.blocks, name).toBeGreaterThan(0);
    }
  }, 300_000);

  it('prints a table, and without nvcc says what it cannot tell', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/usr/bin:/bin';
    try {
      const r = await tttc('compile', spec, '--target', 'cuda', '--report', '--out', out());
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^kernel +threads +smem KB +scratch KB +blocks\/SM +block barriers +warp barriers$/m);
      const threads = renderCuda(compileExample('ttt_linear.ttt'), { arch: 'sm_90', dtype: 'f32' }).kernel.invocations;
      expect(r.out).toMatch(new RegExp(`^tttc_ttt_linear_kernel +${threads} `, 'm'));
      expect(r.out).toContain('nvcc is not on PATH: no registers, spills or instruction counts');
    } finally {
      process.env.PATH = path;
    }
  });

  it("reads each kernel's global scratch back from its parameters", () => {
    // titans_mlp_memory's prefill keeps buffers in scratch on sm_90; its training kernels too.
    const c = compileExample('rules/titans_mlp_memory.ttt');
    const options = { arch: 'sm_90', dtype: 'f32' } as const;
    const forward = renderCuda(c, options);
    const backward = renderCudaBackward(c, options);
    const planned = new Map([
      [forward.api.kernel, forward.kernel],
      [backward.api.decodeKernel, backward.kernels.checkpoints],
      [backward.api.kernel, backward.kernels.backward],
    ]);
    const read = new Map([
      ...launches(forward.files.find((f) => f.path === forward.api.source)!.contents),
      ...launches(backward.files.find((f) => f.path === backward.api.source)!.contents),
    ]);
    expect(forward.kernel.scratchFloats).toBeGreaterThan(0);
    for (const [name, k] of planned) expect(read.get(name)?.scratchBytes, name).toBe(k.scratchFloats * 4);
  });

  it('is refused without the cuda target', async () => {
    const r = await tttc('compile', spec, '--target', 'wgsl', '--report', '--out', out());
    expect(r.code).toBe(2);
    expect(r.err).toContain('--report reads back the CUDA kernels: add cuda to --target');
  });
});
