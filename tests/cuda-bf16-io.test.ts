/**
 * bf16 I/O (`io: 'bf16'`) through nvcc, on a machine with nvcc and no GPU: every example's kernels
 * built (for sm_80 or sm_90 in turn, TTT-Linear for both) with their views and output stored as bf16, with no warning from nvcc,
 * ptxas or the host compiler, and no local memory (no stack frame, no spills) in any kernel, as
 * with f32 I/O (tests/cuda.test.ts and `npm run report:cuda` build those). The fused backward's
 * kernels with bf16 I/O (bf16 views, output, output cotangent and view gradients) likewise, for
 * TTT-Linear: on sm_80 with f32 operands at the sizes tests/cuda-cpu-bf16-io-backward.test.ts
 * runs, on sm_90 with bf16 operands on tensor cores.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ptxasResources, type Resources } from '../targets/cuda/readback.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import type { GeneratedFile } from '../targets/target.ts';
import type { TargetOptions } from '../targets/target.ts';
import { compileExample, exampleFiles } from './support/specs.ts';
import { strictFlags } from './support/nvcc.ts';

const execFileAsync = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'tttc-cuda-bf16-io-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** nvcc's -v report per kernel of `spec` generated with `options`; fails the test with nvcc's output. */
async function build(
  spec: string,
  options: TargetOptions,
  render: (o: TargetOptions) => { files: GeneratedFile[]; api: { source: string } } = (o) =>
    renderCuda(compileExample(spec), o),
): Promise<Map<string, Resources>> {
  const cuda = render(options);
  const dir = mkdtempSync(join(work, 'k-'));
  for (const f of cuda.files) writeFileSync(join(dir, f.path), f.contents);
  const args = [...strictFlags(options.arch), '-o', join(dir, 'k.o'), join(dir, cuda.api.source)];
  try {
    const { stdout, stderr } = await execFileAsync('nvcc', args, { cwd: dir, maxBuffer: 1 << 24 });
    expect(stdout + stderr).not.toMatch(/warning/i);
    return ptxasResources(stderr + stdout);
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `nvcc failed on ${spec} ${options.arch} ${options.dtype} io ${options.io}:\n${x.stderr ?? x.message}`,
    );
  }
}

const localBytes = (r: Resources) => r.stackBytes + r.spillStores + r.spillLoads;

describe('bf16 I/O kernels build with nvcc without a warning or a spill', { timeout: 300_000 }, () => {
  // Each example on one arch, the two in turn (f32 I/O builds every example on both, and the
  // loads and stores bf16 I/O changes do not depend on it); TTT-Linear on both, with bf16 operands too.
  const cases = [
    ...exampleFiles.map((spec, i) => ({ spec, dtype: 'f32' as const, arch: i % 2 === 0 ? 'sm_80' : 'sm_90' })),
    { spec: 'ttt_linear.ttt', dtype: 'f32' as const, arch: 'sm_80' },
    { spec: 'ttt_linear.ttt', dtype: 'bf16' as const, arch: 'sm_80' },
    { spec: 'ttt_linear.ttt', dtype: 'bf16' as const, arch: 'sm_90' },
  ].filter((c, i, all) => all.findIndex((d) => d.spec === c.spec && d.dtype === c.dtype && d.arch === c.arch) === i);
  for (const { spec, dtype, arch } of cases)
    it(`${spec} ${arch} ${dtype} operands`, async () => {
      const kernels = await build(spec, { arch, dtype, io: 'bf16' });
      expect(kernels.size).toBeGreaterThan(0);
      for (const [kernel, r] of kernels) expect(localBytes(r), `${kernel}: stack and spills`).toBe(0);
    });
});

describe('the bf16-I/O fused backward builds with nvcc without a warning or a spill', { timeout: 300_000 }, () => {
  // f32 operands at the sizes cuda-cpu runs; bf16 operands at sizes whose products fill
  // tensor-core tiles, so both training kernels run them there (tests/cuda-mma-backward.test.ts).
  const cases = [
    { arch: 'sm_80', dtype: 'f32' as const, D: 8, K: 4 },
    { arch: 'sm_90', dtype: 'bf16' as const, D: 16, K: 16 },
  ];
  for (const { arch, dtype, D, K } of cases)
    it(`ttt_linear.ttt ${arch} ${dtype} operands, D=${D} K=${K}`, async () => {
      const c = compileExample('ttt_linear.ttt', 'auto', { D, K });
      const kernels = await build('ttt_linear.ttt', { arch, dtype, io: 'bf16' }, (o) => renderCudaBackward(c, o));
      expect(kernels.size, 'the checkpointing forward and the backward kernel').toBe(2);
      for (const [kernel, r] of kernels) expect(localBytes(r), `${kernel}: stack and spills`).toBe(0);
    });
});
