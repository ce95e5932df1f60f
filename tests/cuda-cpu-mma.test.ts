/**
 * Tensor-core products through tttc_mma.cuh (targets/cuda/mma.ts): a hand-written kernel
 * (tests/fixtures/mma.cu) multiplies a 16x16 bf16 A by a 16x8 B (ldmatrix, plain and transposed,
 * and A packed in registers), a 64x64 by 64x64 (cp.async, ldmatrix x4 .trans, a k loop), and a
 * 16x8 f32 A by an 8x8 B on tf32 tensor cores (one mma on tf32-rounded operands, and the 3xTF32
 * split). nvcc must put mma.sync and ldmatrix in its PTX for sm_80 and sm_90 without spills; on the
 * CPU, through tttc_cuda_cpu_mma.h, every product must agree with an f64 product of the operands
 * as the mma reads them within the rounding the emulation documents, for several seeds, and run
 * clean under AddressSanitizer.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CudaCpuMode, cacheRoot, INCLUDE_DIR, MODE_FLAGS } from '../runtime/cuda-cpu/build.ts';
import { MMA_HEADER, MMA_HEADER_FILE } from '../targets/cuda/mma.ts';

const execFileAsync = promisify(execFile);
const FIXTURE = readFileSync(new URL('./fixtures/mma.cu', import.meta.url), 'utf8');
const SEEDS = [1, 2, 3, 4];

const CP_ASYNC_FIXTURE = readFileSync(new URL('./fixtures/cp_async.cu', import.meta.url), 'utf8');

/** The fixture (or a variant of it) and the header in a cache folder named by their digest and the build's. */
function sourceDir(build: string, fixture = FIXTURE): string {
  const digest = createHash('sha256').update(JSON.stringify({ build, fixture, MMA_HEADER })).digest('hex').slice(0, 24);
  const dir = join(cacheRoot(), 'cuda-mma', digest);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mma.cu'), fixture);
  writeFileSync(join(dir, MMA_HEADER_FILE), MMA_HEADER);
  return dir;
}

/** A fixture built for the CPU with g++ in `mode`, cached by a digest of sources, headers and flags. */
async function buildCpu(mode: CudaCpuMode, fixture = FIXTURE): Promise<string> {
  const headers = ['tttc_cuda_cpu.h', 'tttc_cuda_cpu_mma.h'].map((h) => readFileSync(join(INCLUDE_DIR, h), 'utf8'));
  const flags = ['-std=c++17', '-Wall', '-Wextra', '-Werror', '-DTTTC_CUDA_CPU_ARCH=80', ...MODE_FLAGS[mode]];
  const dir = sourceDir(JSON.stringify({ flags, headers }), fixture);
  const executable = join(dir, `mma-${mode}`);
  if (existsSync(executable)) return executable;
  const partial = `${executable}.${process.pid}`;
  await execFileAsync(
    process.env.CXX ?? 'g++',
    [...flags, '-I', INCLUDE_DIR, '-I', dir, '-x', 'c++', join(dir, 'mma.cu'), '-o', partial],
    { maxBuffer: 1 << 24 },
  );
  renameSync(partial, executable);
  return executable;
}

interface Case {
  name: string;
  m: number;
  k: number;
  n: number;
  a: number[];
  b: number[];
  c: number[];
  d: number[];
}

function parseCases(out: string): Case[] {
  const lines = out.trim().split('\n');
  const cases: Case[] = [];
  for (let i = 0; i < lines.length; i += 5) {
    const [name, m, k, n] = lines[i].split(' ');
    // Printed with 9 digits, which name one f32 but not its exact decimal: parsed back to that f32.
    const [a, b, c, d] = lines.slice(i + 1, i + 5).map((l) => l.split(' ').map((x) => Math.fround(Number(x))));
    cases.push({ name, m: Number(m), k: Number(k), n: Number(n), a, b, c, d });
  }
  return cases;
}

const bits = new Float32Array(1);
const word = new Uint32Array(bits.buffer);
/** f32 to bf16, round to nearest even (finite values), written from the format, not the header. */
function bf16(x: number): number {
  bits[0] = x;
  const u = word[0];
  word[0] = Math.floor((u + 0x7fff + ((u >>> 16) & 1)) / 0x10000) * 0x10000;
  return bits[0];
}

/** What 3xTF32 may leave of a product term a·b: hi + lo is each operand within 2^-22, lo·lo is dropped. */
const SPLIT_TERM = 3 * 2 ** -22 * (1 + 2 ** -10);

/**
 * Checks D against the f64 product of the operands as the mma reads them: A rounded to bf16 for
 * the bf16 cases (B is printed rounded), as printed for `tf32_tile` (rounded to tf32 already),
 * and the f32 operands themselves for `tf32x3_tile`. The emulation sums each mma's exact products
 * and C exactly and rounds once to f32 (u = 2^-24), so a k loop of s mma steps is within
 * s·u·(|C| + Σ|a·b|) of the exact result (each step's partial sum is bounded by that magnitude),
 * one step within u·|exact|; the split's three mma add SPLIT_TERM·Σ|a·b| to three roundings;
 * 2^-50 of the magnitude covers the f64 sums.
 */
function check(c: Case): void {
  const u = 2 ** -24;
  const tf32 = c.name.startsWith('tf32');
  const split = c.name.startsWith('tf32x3');
  const steps = c.k / (tf32 ? 8 : 16);
  const a = tf32 ? c.a : c.a.map(bf16);
  let worst = 0;
  for (let i = 0; i < c.m; i++)
    for (let j = 0; j < c.n; j++) {
      let exact = c.c[i * c.n + j];
      let magnitude = Math.abs(exact);
      for (let k = 0; k < c.k; k++) {
        const p = a[i * c.k + k] * c.b[k * c.n + j];
        exact += p;
        magnitude += Math.abs(p);
      }
      const got = c.d[i * c.n + j];
      const rounding = split
        ? (SPLIT_TERM + 3 * u * (1 + 2 ** -20)) * magnitude
        : steps === 1
          ? u * Math.abs(exact)
          : steps * u * magnitude * (1 + 2 ** -20);
      const bound = rounding + 2 ** -50 * magnitude;
      const error = Math.abs(got - exact);
      if (!(error <= bound))
        throw new Error(`${c.name} D[${i}][${j}] = ${got}, exact ${exact}, error ${error} > ${bound}`);
      worst = Math.max(worst, error / magnitude);
    }
  expect(worst).toBeLessThan(split ? SPLIT_TERM + 3 * u : steps * u);
}

const CASES = [
  'tile_ldmatrix_b_n_major',
  'tile_ldmatrix_b_k_major_trans',
  'tile_packed_a',
  'tf32_tile',
  'tf32x3_tile',
  'tiled_64',
];

describe('tensor-core products on the CPU (tttc_cuda_cpu_mma.h)', () => {
  let fast = '';
  let asan = '';
  let tsan = '';
  let unsynchronised = '';
  beforeAll(async () => {
    // The 64x64 kernel without the barrier between its cp.async staging and the warps' ldmatrix reads.
    const withoutBarrier = FIXTURE.replace('tttc_cp_async_wait<0>();\n  __syncthreads();', 'tttc_cp_async_wait<0>();');
    expect(withoutBarrier).not.toBe(FIXTURE);
    [fast, asan, tsan, unsynchronised] = await Promise.all([
      buildCpu('fast'),
      buildCpu('asan'),
      buildCpu('tsan'),
      buildCpu('tsan', withoutBarrier),
    ]);
  }, 300_000);

  it.each(SEEDS)('agree with the f64 product of the bf16 operands (seed %i)', async (seed) => {
    const { stdout } = await execFileAsync(fast, [String(seed)], { maxBuffer: 1 << 24 });
    const cases = parseCases(stdout);
    expect(cases.map((c) => c.name)).toEqual(CASES);
    for (const c of cases) check(c);
  });

  it('the check catches one element off by 1e-3, and the packed A is rounded in the kernel', async () => {
    const { stdout } = await execFileAsync(fast, ['5'], { maxBuffer: 1 << 24 });
    const packed = parseCases(stdout).find((c) => c.name === 'tile_packed_a')!;
    expect(packed.a.some((x) => bf16(x) !== x)).toBe(true);
    const off = { ...packed, d: packed.d.map((x, i) => (i === 0 ? x + Math.abs(x) * 1e-3 + 1e-3 : x)) };
    expect(() => check(off)).toThrow(/D\[0\]\[0\]/);
    // One tf32 mma is no split: its result fails the split's bound on the same f32 operands.
    const [single, split] = ['tf32_tile', 'tf32x3_tile'].map((name) =>
      parseCases(stdout).find((c) => c.name === name)!,
    );
    expect(() => check({ ...split, d: single.d })).toThrow(/tf32x3_tile D/);
  });

  it.each([
    ['AddressSanitizer', () => asan],
    ['ThreadSanitizer', () => tsan],
  ])(
    'run clean under %s',
    async (_, executable) => {
      const { stdout, stderr } = await execFileAsync(executable(), ['11'], { maxBuffer: 1 << 24 });
      expect(stderr).toBe('');
      for (const c of parseCases(stdout)) check(c);
    },
    120_000,
  );

  it('a copy lands only at the wait that covers its group', async () => {
    const executable = await buildCpu('fast', CP_ASYNC_FIXTURE);
    const { stdout } = await execFileAsync(executable, [], { maxBuffer: 1 << 24 });
    // 32 threads, each 4 floats of 1s in its first group and 4 of 2s in its second.
    expect(stdout).toBe('before 0 0\nwait1 128 0\nwait0 128 256\n');
  }, 120_000);

  it('the 64x64 product without its cp.async wait reads unstaged operands and fails the check', async () => {
    const withoutWait = FIXTURE.replace('tttc_cp_async_wait<0>();\n  __syncthreads();', '__syncthreads();');
    expect(withoutWait).not.toBe(FIXTURE);
    const { stdout } = await execFileAsync(await buildCpu('fast', withoutWait), ['7'], { maxBuffer: 1 << 24 });
    const tiled = parseCases(stdout).find((c) => c.name === 'tiled_64')!;
    expect(() => check(tiled)).toThrow(/tiled_64 D/);
  }, 120_000);

  it('ThreadSanitizer sees ldmatrix read what other warps staged without a barrier', async () => {
    const run = execFileAsync(unsynchronised, ['11'], { maxBuffer: 1 << 24 });
    await expect(run).rejects.toMatchObject({
      stderr: expect.stringMatching(/ThreadSanitizer: data race[\s\S]*ldmatrix/),
    });
  }, 120_000);
});

// nvcc is required (.ci/run puts it on PATH): without it these fail rather than skip.
describe('tensor-core products under nvcc', () => {
  it.each(['sm_80', 'sm_90'])('%s: PTX with mma.sync and ldmatrix, no spills, no warnings', async (arch) => {
    const dir = sourceDir('nvcc');
    const ptx = join(dir, `mma-${arch}.ptx`);
    const cubin = join(dir, `mma-${arch}.cubin`);
    const common = [`-arch=${arch}`, '-std=c++17', '-Werror', 'all-warnings', join(dir, 'mma.cu')];
    await execFileAsync('nvcc', [...common, '-ptx', '-o', ptx], { maxBuffer: 1 << 24 });
    const { stdout, stderr } = await execFileAsync('nvcc', [...common, '-cubin', '-Xptxas', '-v', '-o', cubin], {
      maxBuffer: 1 << 24,
    });
    const text = readFileSync(ptx, 'utf8');
    expect(text).toContain('mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32');
    expect(text).toContain('mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32');
    expect(text).toContain('cvt.rna.tf32.f32');
    for (const op of ['ldmatrix.sync.aligned.m8n8.x4.shared.b16', 'ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16'])
      expect(text).toContain(op);
    expect(text).toContain('cp.async.cg.shared.global');
    const report = stdout + stderr;
    expect(report).toMatch(/Compiling entry function '\w*mma_64\w*'/);
    expect(report).not.toMatch(/[1-9]\d* bytes spill/);
    expect(report).not.toMatch(/warning/i);
    rmSync(cubin, { force: true });
  });
});
