/**
 * Threads per block: chosen by the scheduler from the sizes (compiler/schedule/workgroup-size.ts)
 * or fixed with `threads` (`--threads`). The kernels must be right at every block size a compile
 * can give them, run on the CPU against the f64 reference (forward within 1e-5 and backward within
 * 1e-4 in f32, as everywhere; bf16 within tests/cuda-cpu.test.ts's bound), each kernel launched
 * with its own block size; the choice follows the model, and a bad `threads` is refused.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compile } from '../api/index.ts';
import { OptionError } from '../api/options.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import type { ScheduledKernel, TargetLimits } from '../compiler/schedule/kernel.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import {
  chooseWorkgroupSize,
  MARGIN,
  rateBlockSize,
  residentHeads,
  workgroupSizes,
} from '../compiler/schedule/workgroup-size.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { gradientTensors, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { archOf, minBlocksPerSm } from '../targets/cuda/arch.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';
import type { TargetOptions } from '../targets/target.ts';
import { worst } from './support/bf16-model.ts';
import { tttc } from './support/cli.ts';
import { randomInputs } from './support/inputs.ts';
import { referenceBackward } from './support/reference-backward.ts';
import { compileExample, repoRoot } from './support/specs.ts';

/** A call that ends in a partial chunk, from a start inside the first mini-batch. */
const CALL = { B: 1, H: 2, T: 21, start: 3, accum: true, seed: 5 };
const SIZE = { D: 32, K: 8 };
/** As tests/cuda-cpu.test.ts: bf16 operands keep 8 bits, and a mini-batch chains a few products. */
const BF16_TOL = 3e-2;

async function forwardError(c: Compiled, options: TargetOptions): Promise<number> {
  const inputs = innerLoopInputs(c.signature, randomInputs(c.chunk, CALL));
  const want = innerLoopOutputTensors(runReference(c.chunk, inputs));
  const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(c, options));
  return worst(innerLoopOutputTensors(await loop.run(inputs)), want);
}

async function backwardError(c: Compiled, options: TargetOptions): Promise<number> {
  const { named, inputs, cotangents, want } = referenceBackward(c, CALL, 6);
  const loop = await CudaCpuBackward.create(cudaCpuBackwardProgram(c, options));
  const got = await loop.run(inputs, cotangents);
  return worst(new Map([...innerLoopOutputTensors(got.outputs), ...gradientTensors(got.grads, named)]), want);
}

describe('kernels at every block size, on the CPU against the f64 reference', () => {
  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt', 'gated_linear.ttt', 'silu_rmsnorm_mlp.ttt'])
    for (const threads of [32, 64, 256])
      it(`${spec}, f32, ${threads} threads: forward within 1e-5`, async () => {
        const c = compileExample(spec, 'auto', SIZE);
        const options: TargetOptions = { arch: 'sm_90', dtype: 'f32', threads };
        const source = renderCuda(c, options).files.find((f) => f.path.endsWith('.cu'))!.contents;
        expect(source).toContain(`__launch_bounds__(${threads},`);
        expect(source).toContain(`constexpr unsigned kThreads = ${threads};`);
        // The decode kernel runs one token per launch, which its latency decides: it keeps the most.
        expect(source).toContain('constexpr unsigned kDecodeThreads = 256;');
        expect(source).toContain(`// ${threads} threads a block, as the threads option fixes them.`);
        expect(await forwardError(c, options)).toBeLessThan(1e-5);
      }, 120_000);

  for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
    for (const threads of [32, 64]) {
      it(`${spec}, bf16 on tensor cores, ${threads} threads: forward within the bf16 bound`, async () => {
        const c = compileExample(spec, 'auto', SIZE);
        const error = await forwardError(c, { arch: 'sm_80', dtype: 'bf16', threads });
        expect(error).toBeLessThan(BF16_TOL);
        expect(error, 'the operands were rounded').toBeGreaterThan(1e-4);
      }, 120_000);
      it(`${spec}, f32, ${threads} threads: checkpointing forward and backward within 1e-4`, async () => {
        const c = compileExample(spec, 'auto', { D: 16, K: 8 });
        expect(await backwardError(c, { arch: 'sm_90', dtype: 'f32', threads })).toBeLessThan(1e-4);
      }, 120_000);
    }
});

describe('the block size the scheduler chooses', () => {
  const arch = archOf('sm_90');
  const scheduleAt = (c: Compiled) => (limits: TargetLimits) => schedule(c.chunk, limits);
  const rated = (c: Compiled) =>
    workgroupSizes(arch.limits).map((invocations) => {
      const k = schedule(c.chunk, { ...arch.limits, invocations });
      return { k, ...rateBlockSize(k, arch.limits) };
    });

  it('weighs a warp, two, four and eight', () => {
    expect(workgroupSizes(arch.limits)).toEqual([32, 64, 128, 256]);
  });

  it('is the largest size within the margin of least regret over a full GPU and one head per SM', () => {
    for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt', 'delta_rule.ttt'])
      for (const D of [4, 16, 64]) {
        const c = compileExample(spec, 'auto', { D, K: D === 4 ? 4 : 16 });
        const all = rated(c);
        const bestFull = Math.min(...all.map((r) => r.full));
        const bestAlone = Math.min(...all.map((r) => r.alone));
        const regrets = all.map((r) => Math.max(r.full / bestFull, r.alone / bestAlone));
        const least = Math.min(...regrets);
        const want = Math.max(...all.filter((_, i) => regrets[i] <= least * MARGIN).map((r) => r.k.invocations));
        expect(chooseWorkgroupSize(scheduleAt(c), arch.limits).invocations, `${spec} D=${D}`).toBe(want);
      }
  });

  it('gives a head whose every stage has fewer elements than a warp a smaller block', () => {
    // D = 4, K = 4: no stage has more than 16 elements, so most of a block idles at every stage
    // and a head takes as long alone in a block of two warps as of eight; smaller blocks let an
    // SM hold more heads.
    for (const spec of ['ttt_linear.ttt', 'delta_rule.ttt']) {
      const c = compileExample(spec, 'auto', { D: 4, K: 4 });
      const all = rated(c).filter((r) => r.k.invocations >= 64);
      expect(new Set(all.map((r) => r.alone)).size, spec).toBe(1);
      expect(chooseWorkgroupSize(scheduleAt(c), arch.limits).invocations, spec).toBeLessThan(256);
    }
  });

  it('keeps the largest block for the examples at the benchmark sizes (D = 64, K = 16)', () => {
    for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt'])
      expect(chooseWorkgroupSize(scheduleAt(compileExample(spec)), arch.limits).invocations, spec).toBe(256);
  });

  it('says in the generated code how it rated each size it weighed', () => {
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 4, K: 4 });
    const chosen = chooseWorkgroupSize(scheduleAt(c), arch.limits);
    const source = renderCuda(c, { arch: 'sm_90', dtype: 'f32' }).files.find((f) => f.path.endsWith('.cu'))!.contents;
    expect(source).toContain(`// ${chosen.invocations} threads a block, chosen by the scheduler's model of an SM`);
    for (const r of chosen.blockSizes!)
      expect(source).toContain(
        `threads: ${Math.round(r.full).toLocaleString('en-US')} / ${Math.round(r.alone).toLocaleString('en-US')}`,
      );
    expect(source).toContain('// 256 threads a block: one token a launch');
  });

  it('keeps the limit for a one-row (decode) kernel and for a target without a multiprocessor model', () => {
    const decode = compileExample('ttt_linear.ttt', 'auto', { D: 4, K: 4 }, 1);
    expect(decode.chunk.rows).toBe(1);
    expect(chooseWorkgroupSize(scheduleAt(decode), arch.limits).invocations).toBe(arch.limits.invocations);
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 4, K: 4 });
    const wgsl = chooseWorkgroupSize(scheduleAt(c), WEBGPU_DEFAULT_LIMITS);
    expect(wgsl.invocations).toBe(WEBGPU_DEFAULT_LIMITS.invocations);
  });

  it("asks ptxas for the blocks the model counts: the SM's memory, threads and block slots", () => {
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 4, K: 4 });
    const m = arch.limits.multiprocessor!;
    for (const invocations of workgroupSizes(arch.limits)) {
      const k: ScheduledKernel = schedule(c.chunk, { ...arch.limits, invocations });
      const resident = residentHeads(arch.limits, k);
      expect(resident).toBe(Math.min(Math.floor(m.invocations / invocations), m.workgroups));
      expect(minBlocksPerSm(k, arch)).toBe(resident);
    }
  });
});

describe('threads as an option', () => {
  const text = readFileSync(join(repoRoot, 'examples', 'ttt_linear.ttt'), 'utf8');

  it('the API refuses a size it does not offer, and threads without the cuda target', async () => {
    await expect(compile(text, { targets: ['cuda'], threads: 48 })).rejects.toThrow(
      /threads must be one of 32, 64, 128, 256, got '48'/,
    );
    await expect(compile(text, { targets: ['wgsl'], threads: 64 })).rejects.toThrow(OptionError);
    const out = await compile(text, { targets: ['cuda'], threads: 64 });
    expect(out.ok).toBe(true);
    expect(out.files.find((f) => f.path.endsWith('.cu'))!.contents).toContain('__launch_bounds__(64,');
  });

  it('tttc compile --threads writes the kernels with that block size; a bad value exits 2', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tttc-threads-'));
    const spec = join(repoRoot, 'examples', 'ttt_linear.ttt');
    const ok = await tttc('compile', spec, '--target', 'cuda', '--threads', '32', '--out', out);
    expect(ok.code, ok.err).toBe(0);
    expect(readFileSync(join(out, 'ttt_linear.cu'), 'utf8')).toContain('constexpr unsigned kThreads = 32;');
    for (const bad of ['100', '64x', '0']) {
      const r = await tttc('compile', spec, '--target', 'cuda', '--threads', bad, '--out', out);
      expect(r.code, bad).toBe(2);
      expect(r.err).toContain(`--threads must be one of 32, 64, 128, 256, got '${bad}'`);
    }
    const run = await tttc(
      'run',
      spec,
      '--inputs',
      'x.safetensors',
      '--out',
      join(out, 'y.safetensors'),
      '--threads',
      '64',
    );
    expect(run.code).toBe(2);
    expect(run.err).toContain('--threads choose the generated CUDA that --backend cuda-cpu runs');
  });
});
