/**
 * Per-token inputs read ahead with cp.async (compiler/schedule/prefetch.ts): for every example,
 * rule example and a few random rule combinations, f32 and bf16 operands, f32 and bf16 I/O, sm_80
 * and sm_90, the plan costs no block per SM, stays within the block's limit and gives each input a
 * 16-byte-aligned slot of its own sized in the bytes global memory holds it in (its buffer, or
 * apart from it), and decode reads nothing ahead; the backward's plan takes per-token inputs only.
 * nvcc puts cp.async in the PTX of TTT-Linear's sm_80 prefill, without spills; through cuda-cpu,
 * whose cp.async lands only at the wait that covers it (tttc_cuda_cpu_mma.h), the kernels go wrong
 * with their wait removed and match the f64 reference with every tensor taken as misaligned (rows
 * staged from global memory); so do the kernel reading bf16 views ahead and TTT-Linear's backward
 * (the checkpointing forward and the backward kernel, each without its wait). Every example's
 * kernels against the reference, on T that is not a multiple of K, are in tests/cuda-cpu.test.ts,
 * tests/cuda-mma-kernels.test.ts, tests/cuda-cpu-bf16-io.test.ts and tests/backward-kernels.test.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Compiled } from '../compiler/pipeline.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import type { ScheduledKernel, TargetLimits } from '../compiler/schedule/kernel.ts';
import { residentWorkgroups } from '../compiler/schedule/layout.ts';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { backwardSignature } from '../compiler/backward/signature.ts';
import { scheduleBackward } from '../compiler/schedule/backward.ts';
import { tokenRows, withPrefetch } from '../compiler/schedule/prefetch.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { chunkInputKey } from '../core/mangle.ts';
import { size } from '../core/shape.ts';
import { allPorts, elementBytes, type Io, withIo } from '../core/signature.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import type { CudaCpuProgram } from '../runtime/cuda-cpu/program.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import type { TargetOptions } from '../targets/target.ts';
import { expectBf16OutputWithin, roundedViews } from './support/bf16-io.ts';
import { randomInputs } from './support/inputs.ts';
import { normals, rng } from './support/random.ts';
import { randomRuleSpec } from './support/rule-spec.ts';
import { cachedPtxBuild, strictFlags } from './support/nvcc.ts';
import { compileExample, repoRoot } from './support/specs.ts';
import { expectCopiesApart } from './support/copies.ts';

const ARCHS = ['sm_80', 'sm_90'] as const;
const DTYPES = ['f32', 'bf16'] as const;
const IOS = ['f32', 'bf16'] as const;
/** As tests/cuda-cpu.test.ts. */
const TOL = 1e-5;
const BF16_TOL = 3e-2;

const specs = ['examples', 'examples/rules'].flatMap((d) =>
  readdirSync(join(repoRoot, d))
    .filter((f) => f.endsWith('.ttt'))
    .sort()
    .map((f) => join(d, f)),
);

/** Random rule combinations (tests/support/rule-spec.ts), whose small buffers fall at unaligned offsets. */
const RANDOM_RULES = Array.from({ length: 12 }, (_, i) => `random rule ${i + 1}`);

function compiled(spec: string): Compiled {
  const random = /^random rule (\d+)$/.exec(spec);
  const text = random ? randomRuleSpec(Number(random[1])) : readFileSync(join(repoRoot, spec), 'utf8');
  const r = compileSpec(text, { file: random ? 'random.ttt' : spec.split('/').pop()! });
  if (!r.ok) throw new Error(`${spec} does not compile`);
  return r.compiled;
}

/**
 * A plan's soundness: the block keeps its blocks per SM and stays within the limit; each slot,
 * sized in the bytes global memory holds its rows in (half the floats for bf16), is 16-byte
 * aligned, within the block, apart from the others, and its input's own buffer or apart from it
 * (other threads' staging would overwrite a slot partly over it; a bf16 slot is never its own buffer);
 * and the views' copies for tensor-core operands lie apart from the slots and all else live beside
 * them (tests/support/copies.ts).
 */
function expectSoundPlan(plain: ScheduledKernel, k: ScheduledKernel, limits: TargetLimits, label: string): void {
  expect(k.workgroupFloats * 4, label).toBeLessThanOrEqual(limits.workgroupBytes);
  expect(residentWorkgroups(limits, k.workgroupFloats * 4), label).toBe(
    residentWorkgroups(limits, plain.workgroupFloats * 4),
  );
  const slots = [...(k.prefetch ?? [])].map(([id, s]) => ({
    from: s.offset,
    to: s.offset + (size(k.program.nodes[id].shape) * s.elementBytes) / 4,
  }));
  for (const [id, s] of k.prefetch ?? []) {
    const own = k.buffers.get(id)!;
    const n = size(k.program.nodes[id].shape);
    if (own.space === 'workgroup' && (own.offset !== s.offset || s.elementBytes !== 4))
      expect(own.offset + n <= s.offset || s.offset + (n * s.elementBytes) / 4 <= own.offset, label).toBe(true);
  }
  for (const [i, a] of slots.entries()) {
    expect(a.from % 4, label).toBe(0);
    expect(a.to, label).toBeLessThanOrEqual(k.workgroupFloats);
    for (const b of slots.slice(i + 1)) expect(a.to <= b.from || b.to <= a.from, label).toBe(true);
  }
  expectCopiesApart(k, label);
}

/** The input keys of the slots a plan gives, each with its element bytes. */
const slotInputs = (k: ScheduledKernel) =>
  [...(k.prefetch ?? [])].map(([id, s]) => {
    const op = k.program.nodes[id].op;
    return `${op.kind === 'input' ? op.name : `%${id}`}:${s.elementBytes}`;
  });

describe.each([...specs, ...RANDOM_RULES])('the read-ahead plan of %s', (spec) => {
  for (const arch of ARCHS)
    for (const dtype of DTYPES)
      it(`${arch} ${dtype}, f32 and bf16 I/O: no block per SM lost, within the limit, slots apart and aligned`, () => {
        const limits = archOf(arch).limits;
        const c = compiled(spec);
        for (const v of c.variants) {
          const plain: ScheduledKernel = (dtype === 'bf16' ? scheduleWithTensorCores : schedule)(v.chunk, limits);
          for (const io of IOS) {
            const tensors = withIo(allPorts(c.signature), io);
            const k = withPrefetch(plain, limits, tokenRows(tensors));
            if (v.chunk.rows === 1) {
              expect(k, 'decode reads nothing ahead').toBe(plain);
              continue;
            }
            expectSoundPlan(plain, k, limits, `${v.name} io ${io}`);
            // Each slot holds its input as global memory does.
            const bytes = new Map(tensors.map((t) => [chunkInputKey(t), elementBytes(t)]));
            for (const [key, b] of slotInputs(k).map((x) => x.split(':')))
              expect(Number(b), `${v.name} io ${io}: ${key}`).toBe(bytes.get(key));
          }
        }
      });
});

describe.each(specs)('the read-ahead plan of the backward of %s', (spec) => {
  it.each(ARCHS)('%s: per-token inputs only (no checkpoint), no block per SM lost, slots apart and aligned', (arch) => {
    const limits = archOf(arch).limits;
    const c = compiled(spec);
    const plain = scheduleBackward(deriveChunkBackward(c.chunk), limits);
    const k = withPrefetch(plain, limits, tokenRows(allPorts(backwardSignature(c.signature))));
    expectSoundPlan(plain, k, limits, 'backward');
    const perToken = new Set(
      backwardSignature(c.signature)
        .inputs.filter((p) => p.lead.includes('T'))
        .map(chunkInputKey),
    );
    for (const x of slotInputs(k)) expect(perToken.has(x.split(':')[0]), x).toBe(true);
  });
});

/**
 * TTT-MLP with f32 operands keeps its states (129 KB) in shared memory, which leaves no slot
 * that would not cost a block per SM: it reads nothing ahead (compiler/schedule/prefetch.ts).
 */
const READ_AHEAD = {
  'examples/ttt_linear.ttt': DTYPES,
  'examples/ttt_mlp.ttt': ['bf16'],
  'examples/silu_rmsnorm_mlp.ttt': DTYPES,
} as const;

describe('TTT-Linear, TTT-MLP (bf16) and an f32 MLP read ahead', () => {
  it.each(ARCHS.flatMap((arch) => DTYPES.map((dtype) => [arch, dtype] as const)))('%s %s', (arch, dtype) => {
    for (const [spec, dtypes] of Object.entries(READ_AHEAD)) {
      if (!(dtypes as readonly string[]).includes(dtype)) continue;
      const k = renderCuda(compiled(spec), { arch, dtype }).kernel;
      expect(k.prefetch?.size, spec).toBeGreaterThan(0);
    }
  });
});

/** The PTX and ptxas log of TTT-Linear's kernels (cached). */
async function nvccBuild(options: TargetOptions): Promise<{ ptx: string; log: string; kernel: string }> {
  const cuda = renderCuda(compileExample('ttt_linear.ttt'), options);
  const built = await cachedPtxBuild('cuda-prefetch', cuda.files, cuda.api.source, strictFlags(options.arch));
  return { ...built, kernel: cuda.api.kernel };
}

// nvcc is required (.ci/run puts it on PATH): without it these fail rather than skip.
describe("nvcc: TTT-Linear's sm_80 prefill copies ahead with cp.async", () => {
  it.each(DTYPES)(
    '%s: cp.async and its wait in the PTX, no spills, no warnings',
    async (dtype) => {
      const { ptx, log, kernel } = await nvccBuild({ arch: 'sm_80', dtype });
      expect(log).not.toMatch(/warning/i);
      const entry = ptx
        .split(/\.entry /)
        .slice(1)
        .find((b) => b.includes(`${kernel}j`));
      expect(entry, kernel).toBeDefined();
      expect(entry).toMatch(/cp\.async\.cg\.shared\.global/);
      expect(entry).toMatch(/cp\.async\.wait_group 0/);
      const report = log
        .split(/Compiling entry function /)
        .slice(1)
        .find((b) => b.includes(`${kernel}j`));
      expect(report).toMatch(/0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads/);
    },
    300_000,
  );
});

/** A partial first mini-batch and a partial last one: T is not a multiple of K. */
const SIZE = { D: 64, K: 16, B: 1, H: 2, T: 37, start: 5, accum: true, seed: 5 };

/** The program with its kernel source rewritten (which must change it). */
function edited(p: CudaCpuProgram, edit: (source: string) => string): CudaCpuProgram {
  const files = p.files.map((f) => (f.path === p.source ? { ...f, contents: edit(f.contents) } : f));
  expect(files.map((f) => f.contents)).not.toEqual(p.files.map((f) => f.contents));
  return { ...p, files };
}

/** The largest relative error of the kernel's outputs against the f64 reference (on the views it stores, for bf16 I/O). */
async function worstError(
  c: Compiled,
  program: CudaCpuProgram,
  named: Map<string, Tensor>,
  io: Io = 'f32',
): Promise<number> {
  const loop = await CudaCpuInnerLoop.create(program, 'fast');
  const inputs = innerLoopInputs(c.signature, named);
  const got = innerLoopOutputTensors(await loop.run(inputs));
  const want = innerLoopOutputTensors(runReference(c.chunk, io === 'bf16' ? roundedViews(inputs) : inputs));
  return worstOf(got, want);
}

function worstOf(got: Map<string, Tensor>, want: Map<string, Tensor>): number {
  let worst = 0;
  for (const [name, w] of want) {
    const e = relativeError(got.get(name)!.data, w.data);
    worst = Math.max(worst, Number.isNaN(e) ? Infinity : e);
  }
  return worst;
}

describe.each(Object.entries(READ_AHEAD))('the read-ahead of %s on the CPU', (path, dtypes) => {
  const spec = path.replace(/^examples\//, '');
  for (const dtype of dtypes) {
    const tol = dtype === 'f32' ? TOL : BF16_TOL;
    it(`sm_80 ${dtype}: without its wait the kernel reads stale rows and is caught`, async () => {
      const c = compileExample(spec, 'auto', { D: SIZE.D, K: SIZE.K });
      const program = cudaCpuProgram(c, { arch: 'sm_80', dtype });
      const withoutWait = edited(program, (s) => s.replaceAll('tttc_cp_async_wait<0>();', ''));
      expect(await worstError(c, withoutWait, randomInputs(c.chunk, SIZE))).toBeGreaterThan(100 * tol);
    }, 300_000);

    it(`sm_80 ${dtype}: with every tensor taken as misaligned, rows staged from global memory still match`, async () => {
      const c = compileExample(spec, 'auto', { D: SIZE.D, K: SIZE.K });
      const misaligned = edited(cudaCpuProgram(c, { arch: 'sm_80', dtype }), (s) =>
        s.replace(/reinterpret_cast<uintptr_t>\(\w+\) % 16 == 0/g, 'false'),
      );
      expect(await worstError(c, misaligned, randomInputs(c.chunk, SIZE))).toBeLessThan(tol);
    }, 300_000);
  }
});

/**
 * Views stored as bf16 (`io: 'bf16'`) are copied ahead as bf16 and widened where staged: TTT-Linear
 * (f32 operands) reads every view ahead so, matches the reference on the bf16 views (the output
 * within the bound tests/support/bf16-io.ts derives, the states within the f32 tolerance), and
 * goes wrong without its wait.
 */
describe('the read-ahead of bf16 views on the CPU', () => {
  const c = compileExample('ttt_linear.ttt', 'auto', { D: SIZE.D, K: SIZE.K });
  const options = { arch: 'sm_80', dtype: 'f32', io: 'bf16' } as const;
  const named = randomInputs(c.chunk, SIZE);

  it('sm_80 f32: every view read ahead as bf16, and the kernel matches the reference', async () => {
    const k = renderCuda(c, options).kernel;
    const views = c.signature.inputs.filter((p) => p.role === 'view').map(chunkInputKey);
    const ahead = [...(k.prefetch ?? [])].flatMap(([id, s]) => {
      const op = k.program.nodes[id].op;
      return op.kind === 'input' && s.elementBytes === 2 ? [op.name] : [];
    });
    expect(ahead.sort()).toEqual(views.sort());
    const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(c, options), 'fast');
    const inputs = innerLoopInputs(c.signature, named);
    const got = innerLoopOutputTensors(await loop.run(inputs));
    const want = innerLoopOutputTensors(runReference(c.chunk, roundedViews(inputs)));
    for (const [name, w] of want)
      if (name === 'output') expectBf16OutputWithin(got.get(name)!, w, TOL, 'bf16 I/O read ahead');
      else expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(TOL);
  }, 300_000);

  it('sm_80 f32: without its wait the kernel reads stale bf16 rows and is caught', async () => {
    const withoutWait = edited(cudaCpuProgram(c, options), (s) => s.replaceAll('tttc_cp_async_wait<0>();', ''));
    expect(await worstError(c, withoutWait, named, 'bf16')).toBeGreaterThan(100 * TOL);
  }, 300_000);
});

/** As tests/backward-kernels.test.ts: the f32 backward's tolerance, its call (a partial last mini-batch, a nonzero start). */
const BACKWARD_TOL = 1e-4;
const BACKWARD_CALL = { B: 2, H: 2, T: 13, start: 2, accum: true, rates: 0.3, seed: 11 };

/**
 * The backward reads ahead too: the checkpointing forward the next chunk, the backward kernel the
 * chunk before (it walks them in reverse). TTT-Linear's backward (D = 8, K = 4) matches the f64
 * reference backward (tests/backward-kernels.test.ts runs every example's), and goes wrong with
 * the wait removed from either kernel alone.
 */
describe("the read-ahead of TTT-Linear's backward on the CPU", () => {
  const c = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 4 });
  const options = { arch: 'sm_90', dtype: 'f32' } as const;
  const named = randomInputs(c.chunk, BACKWARD_CALL);
  const r = rng(12);
  const inputs = innerLoopInputs(c.signature, named);
  const checkpoints: Checkpoints = [];
  const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs, checkpoints));
  const ct = new Map([...outputs].map(([n, t]) => [n, { shape: t.shape, data: normals(r, t.data.length) }]));
  const cotangents = innerLoopCotangents(c.signature, inputs, ct);
  const grads = runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents);
  const want = new Map([...outputs, ...gradientTensors(grads, named)]);

  async function backwardError(program: CudaCpuProgram): Promise<number> {
    const got = await (await CudaCpuBackward.create(program)).run(inputs, cotangents);
    return worstOf(new Map([...innerLoopOutputTensors(got.outputs), ...gradientTensors(got.grads, named)]), want);
  }

  it('sm_90 f32: both kernels read ahead, and the backward matches the reference', async () => {
    const { checkpoints: forward, backward } = renderCudaBackward(c, options).kernels;
    expect(forward.prefetch?.size, 'the checkpointing forward').toBeGreaterThan(0);
    expect(backward.prefetch?.size, 'the backward').toBeGreaterThan(0);
    expect(await backwardError(cudaCpuBackwardProgram(c, options))).toBeLessThan(BACKWARD_TOL);
  }, 300_000);

  it.each(['checkpoints', 'backward'] as const)(
    'sm_90 f32: without the wait of the %s kernel alone, the gradients are caught',
    async (which) => {
      const api = renderCudaBackward(c, options).api;
      const kernel = which === 'checkpoints' ? api.decodeKernel : api.kernel;
      const withoutWait = edited(cudaCpuBackwardProgram(c, options), (s) => {
        // The kernel's text: from its definition to the next kernel's (or the launcher's) start.
        const from = s.indexOf(`${kernel}(`);
        const to = s.indexOf('__global__', from) > 0 ? s.indexOf('__global__', from) : s.length;
        return s.slice(0, from) + s.slice(from, to).replaceAll('tttc_cp_async_wait<0>();', '') + s.slice(to);
      });
      expect(await backwardError(withoutWait)).toBeGreaterThan(100 * BACKWARD_TOL);
    },
    300_000,
  );
});
