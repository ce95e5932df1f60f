/**
 * Rows to warps (compiler/schedule/warp-rows.ts) and the barriers it allows (barriers.ts): which
 * reads keep a stage's rows, where a warp barrier suffices and where a block barrier stays (data
 * read across rows, memory shared by buffers whose rows go to warps differently), and that the
 * generated CUDA needs every warp barrier it has: with them ThreadSanitizer (cuda-cpu) sees no
 * race in the TTT-Linear kernel, without them it reports one.
 */
import { describe, expect, it } from 'vitest';
import { Builder, type Program } from '../compiler/ir/ir.ts';
import { acrossWarps, type Barrier, type MemoryMap, placeBarriers } from '../compiler/schedule/barriers.ts';
import type { Placement, Stage } from '../compiler/schedule/kernel.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { scheduleWithTensorCores } from '../compiler/schedule/tensor-core-placement.ts';
import { chooseWarpRows, rowReads } from '../compiler/schedule/warp-rows.ts';
import { innerLoopCotangents, innerLoopInputs } from '../runtime/inner-loop.ts';
import { CudaCpuBackward } from '../runtime/cuda-cpu/backward.ts';
import { CudaCpuInnerLoop } from '../runtime/cuda-cpu/inner-loop.ts';
import { cudaCpuBackwardProgram, cudaCpuProgram } from '../targets/cuda/cpu.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';

const CUDA = { invocations: 256, lanes: 32 };

/**
 * x: 8 rows of 64 staged; y = exp(x); the row sums of y; the column sums of y (across rows); and
 * y scaled by the column sums. Each node is buffered and computed by a stage of its own.
 */
function rowsProgram(): { p: Program; nodes: Record<'x' | 'y' | 'rowSum' | 'colSum' | 'scaled', number> } {
  const b = new Builder();
  const x = b.input('view.x', [8, 64]);
  const y = b.unary('exp', x);
  const rowSum = b.sum(y, [1]);
  const colSum = b.sum(y, [0]);
  const scaled = b.mul(y, b.expand(colSum, [8, 64]));
  return { p: { nodes: b.nodes, inputs: b.inputs, outputs: [] }, nodes: { x, y, rowSum, colSum, scaled } };
}

/** Each buffer in memory of its own, or at the offsets given. */
function memory(p: Program, stages: Stage[], lanes: number | undefined, at: Map<number, number> = new Map()) {
  const buffered = stages.flatMap((s) => (s.kind === 'compute' ? [s.node] : []));
  const buffers = new Map<number, Placement>();
  let next = 0;
  for (const id of buffered) {
    const elements = p.nodes[id].shape.reduce((a, c) => a * c, 1);
    buffers.set(id, { space: 'workgroup', offset: at.get(id) ?? next });
    next += elements;
  }
  const warpRows = chooseWarpRows(p, stages, (id) => buffers.has(id), CUDA.invocations, lanes);
  const m: MemoryMap = { program: p, buffers, homes: new Map(), stateSize: new Map(), homeInputs: new Map(), warpRows };
  return m;
}

describe('which reads keep the row', () => {
  it('elementwise ops and a broadcast of a row value keep it; a sum across rows and a broadcast along rows do not', () => {
    const { p, nodes } = rowsProgram();
    const buffered = new Set(Object.values(nodes));
    const reads = (id: number) => rowReads({ kind: 'compute', node: id }, p, (x) => buffered.has(x));
    expect(reads(nodes.y)).toEqual(new Map([[nodes.x, true]]));
    expect(reads(nodes.rowSum)).toEqual(new Map([[nodes.y, true]]));
    expect(reads(nodes.colSum)).toEqual(new Map([[nodes.y, false]]));
    expect(reads(nodes.scaled)).toEqual(
      new Map([
        [nodes.y, true],
        [nodes.colSum, false],
      ]),
    );
  });

  it("a product keeps A's rows and reads B whole; a transpose moves the row to another axis", () => {
    const b = new Builder();
    const a = b.input('view.a', [16, 32]);
    const w = b.input('state.W', [32, 32]);
    const prod = b.matmul(a, w);
    const t = b.unary('exp', b.transpose(prod, [1, 0]));
    const p: Program = { nodes: b.nodes, inputs: b.inputs, outputs: [] };
    const buffered = new Set([a, prod, t]);
    const reads = (id: number) => rowReads({ kind: 'compute', node: id }, p, (x) => buffered.has(x));
    expect(reads(prod)).toEqual(
      new Map([
        [a, true],
        [w, false],
      ]),
    );
    expect(reads(t)).toEqual(new Map([[prod, false]]));
  });
});

describe('barriers between stages whose rows warps own', () => {
  const { p, nodes } = rowsProgram();
  const stages: Stage[] = [nodes.x, nodes.y, nodes.rowSum, nodes.colSum, nodes.scaled].map((node) => ({
    kind: 'compute',
    node,
  }));

  it('a warp barrier where a warp reads only rows it wrote, a block barrier where rows cross warps', () => {
    const m = memory(p, stages, CUDA.lanes);
    // The column sums read every row and nothing reads theirs by rows: no warp owns them.
    expect([...m.warpRows.keys()].sort()).toEqual([0, 1, 2, 4]);
    expect(m.warpRows.get(1)).toMatchObject({ rows: 8, rowsPerWarp: 1, rowElements: 64, warps: 8 });
    expect(placeBarriers(m, stages)).toEqual(['warp', 'warp', 'workgroup', 'workgroup', 'workgroup']);
  });

  it('memory shared by buffers whose rows go to warps differently needs a block barrier', () => {
    // The row sums (one float a row) written over x (64 floats a row), which stage 1 reads by rows.
    const m = memory(p, stages, CUDA.lanes, new Map([[nodes.rowSum, 0]]));
    expect(placeBarriers(m, stages).slice(0, 2)).toEqual(['warp', 'workgroup']);
  });

  it('without warp barriers (WGSL) no rows go to warps and every barrier is a block barrier', () => {
    const m = memory(p, stages, undefined);
    expect(m.warpRows.size).toBe(0);
    expect(placeBarriers(m, stages)).toEqual(['workgroup', 'workgroup', 'none', 'workgroup', 'workgroup']);
  });
});

describe('TTT-Linear needs at most 12 block barriers per mini-batch', () => {
  const c = compileExample('ttt_linear.ttt');
  const prefill = c.variants.find((v) => v.name === 'prefill')!.chunk;
  const blockBarriers = (b: readonly Barrier[]) => b.filter(acrossWarps).length;
  for (const arch of ['sm_80', 'sm_90'])
    for (const [dtype, plan] of [
      ['f32', schedule],
      ['bf16', scheduleWithTensorCores],
    ] as const)
      it(`${arch} ${dtype}`, () => {
        const k = plan(prefill, archOf(arch).limits);
        expect(blockBarriers(k.barriers)).toBeLessThanOrEqual(12);
        expect(k.barriers).toContain('warp');
      });

  it('WGSL, which has no warp barrier, keeps block barriers', () => {
    const k = schedule(prefill, { workgroupBytes: 16384, invocations: 256 });
    expect(k.barriers).not.toContain('warp');
    expect(k.warpRows).toBeUndefined();
  });
});

describe('the warp barriers of the generated CUDA are needed (ThreadSanitizer on cuda-cpu)', () => {
  const c = compileExample('ttt_linear.ttt', 'auto', { D: 32, K: 8 });
  const program = cudaCpuProgram(c, { arch: 'sm_90', dtype: 'f32' });
  const source = program.files.find((f) => f.path === program.source)!.contents;
  const inputs = innerLoopInputs(c.signature, randomInputs(c.chunk, { B: 1, H: 2, T: 19, seed: 5, start: 3 }));
  const run = async (contents: string) => {
    const files = program.files.map((f) => (f.path === program.source ? { ...f, contents } : f));
    const loop = await CudaCpuInnerLoop.create({ ...program, files }, 'tsan');
    return loop.run(inputs);
  };

  it('with them: no race', async () => {
    expect(source).toMatch(/__syncwarp\(\);/);
    await expect(run(source)).resolves.toBeDefined();
  });

  it('without them: ThreadSanitizer reports a race in the kernel', async () => {
    const stripped = source.replace(/^\s*__syncwarp\(\);\n/gm, '');
    expect(stripped).not.toMatch(/__syncwarp/);
    await expect(run(stripped)).rejects.toThrow(/ThreadSanitizer: data race[\s\S]*tttc_ttt_linear/);
  });

  it('no race where buffers whose rows warps own share memory (sm_80, D = 64: holding them would cost a block)', async () => {
    const wide = compileExample('ttt_linear.ttt', 'auto', { D: 64, K: 16 });
    const loop = await CudaCpuInnerLoop.create(cudaCpuProgram(wide, { arch: 'sm_80', dtype: 'f32' }), 'tsan');
    const named = randomInputs(wide.chunk, { B: 1, H: 1, T: 21, seed: 6, start: 2 });
    await expect(loop.run(innerLoopInputs(wide.signature, named))).resolves.toBeDefined();
  });

  it('no race in the backward kernels, whose stages warps own too', async () => {
    const small = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 4 });
    const backward = cudaCpuBackwardProgram(small, { arch: 'sm_90', dtype: 'f32' });
    expect(backward.files.find((f) => f.path === backward.source)!.contents).toMatch(/__syncwarp\(\);/);
    const loop = await CudaCpuBackward.create(backward, 'tsan');
    const named = randomInputs(small.chunk, { B: 1, H: 2, T: 9, seed: 8, start: 1, accum: true });
    const inputs = innerLoopInputs(small.signature, named);
    // Cotangents: the states' own values for the states and accumulators, a sine for the output rows.
    const cotangents = new Map([...named].filter(([n]) => /^(state|accum)\./.test(n)));
    cotangents.set('output', { shape: [1, 2, 9, 8], data: Float64Array.from({ length: 144 }, (_, i) => Math.sin(i)) });
    await expect(loop.run(inputs, innerLoopCotangents(small.signature, inputs, cotangents))).resolves.toBeDefined();
  });
});
