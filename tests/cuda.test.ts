/**
 * The CUDA target, on a machine with nvcc and no GPU: every example's kernel built for sm_80 and
 * sm_90 with no warning from nvcc, ptxas or the host compiler (registers, spills and shared memory
 * go to build/cuda-builds.json and a printed table); the launcher's argument checks run from a C
 * driver; the PyTorch binding's Python compiles. scripts/gpu-check.sh runs the kernels on a GPU.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { size } from '../compiler/ir/ir.ts';
import { identifier } from '../core/mangle.ts';
import { renderCuda, type CudaKernel } from '../targets/cuda/render.ts';
import type { TargetOptions } from '../targets/target.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';
import { compileExample, exampleFiles, repoRoot } from './support/specs.ts';
import { STRICT } from './support/nvcc.ts';

const execFileAsync = promisify(execFile);
const ARCHS = ['sm_80', 'sm_90'];
/** The CI machine has 2 cores. */
const CONCURRENT_BUILDS = 2;
const work = mkdtempSync(join(tmpdir(), 'tttc-cuda-'));

interface Tool {
  ok: boolean;
  output: string;
  seconds: number;
}

async function tool(command: string, args: string[]): Promise<Tool> {
  const start = performance.now();
  const seconds = () => (performance.now() - start) / 1000;
  try {
    // Python's bytecode caches go to the scratch folder, not beside the repository's scripts.
    const env = { ...process.env, PYTHONPYCACHEPREFIX: join(work, 'pycache') };
    const { stdout, stderr } = await execFileAsync(command, args, { cwd: work, env, maxBuffer: 1 << 24 });
    return { ok: true, output: stdout + stderr, seconds: seconds() };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${x.stdout ?? ''}${x.stderr ?? ''}${x.message}`, seconds: seconds() };
  }
}

/** Runs the jobs at most `n` at a time, in order. */
async function inPool<T>(jobs: (() => Promise<T>)[], n: number): Promise<T[]> {
  const results = new Array<T>(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: n }, worker));
  return results;
}

const gencode = (arch: string) => `-gencode=arch=compute_${arch.slice(3)},code=${arch}`;

/** Writes a kernel's files to their own folder and returns it. */
function writeKernel(label: string, cuda: CudaKernel): string {
  const dir = join(work, label);
  mkdirSync(dir, { recursive: true });
  for (const f of cuda.files) writeFileSync(join(dir, f.path), f.contents);
  return dir;
}

interface Build {
  spec: string;
  options: TargetOptions;
  cuda: CudaKernel;
  nvcc: Tool;
}

interface ReportRow {
  spec: string;
  arch: string;
  dtype: string;
  registers: number;
  stackFrameBytes: number;
  spillStoreBytes: number;
  spillLoadBytes: number;
  staticSharedBytes: number;
  dynamicSharedBytes: number;
  scratchBytesPerBlock: number;
  nvccSeconds: number;
}

/** Registers, stack, spills and static shared memory of one kernel (by name) in ptxas's `-v` report. */
function ptxasReport(
  all: string,
  kernel: string,
): Pick<ReportRow, 'registers' | 'stackFrameBytes' | 'spillStoreBytes' | 'spillLoadBytes' | 'staticSharedBytes'> {
  // The mangled entry name holds the kernel's name with its length before it: `_Z19tttc_ttt_mlp_kernel...`.
  const entry = all.indexOf(`${kernel.length}${kernel}`);
  const next = all.indexOf('Compiling entry function', entry + 1);
  const output = entry < 0 ? '' : all.slice(entry, next < 0 ? undefined : next);
  const frame = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(output);
  const used = /Used (\d+) registers[^\n]*/.exec(output);
  if (!frame || !used) throw new Error(`no ptxas report in:\n${output}`);
  const smem = /(\d+) bytes smem/.exec(used[0]);
  return {
    registers: Number(used[1]),
    stackFrameBytes: Number(frame[1]),
    spillStoreBytes: Number(frame[2]),
    spillLoadBytes: Number(frame[3]),
    staticSharedBytes: smem ? Number(smem[1]) : 0,
  };
}

/** Specs unlike the examples, by a file-like name; built for sm_90 only, to keep the suite short. */
const UNUSUAL = new Map(
  Object.values(UNUSUAL_SPECS).map((text, i) => {
    const compiled = compileSpec(text, { file: `unusual_${i}.ttt` });
    if (!compiled.ok) throw new Error(`unusual spec ${i} does not compile`);
    return [`unusual_${i}.ttt`, compiled.compiled];
  }),
);
const compiledSpec = (spec: string) => UNUSUAL.get(spec) ?? compileExample(spec);

const PLANNED = [
  ...exampleFiles.flatMap((spec) => ARCHS.map((arch) => ({ spec, options: { arch, dtype: 'f32' } as TargetOptions }))),
  ...ARCHS.map((arch) => ({ spec: 'ttt_linear.ttt', options: { arch, dtype: 'bf16' } as TargetOptions })),
  ...[...UNUSUAL.keys()].map((spec) => ({ spec, options: { arch: 'sm_90', dtype: 'f32' } as TargetOptions })),
];
const label = (p: { spec: string; options: TargetOptions }) =>
  `${p.spec.replace(/\.ttt$/, '')}-${p.options.arch}-${p.options.dtype}`;

let builds: Build[] = [];
const report: ReportRow[] = [];

beforeAll(async () => {
  builds = await inPool(
    PLANNED.map((p) => async () => {
      const cuda = renderCuda(compiledSpec(p.spec), p.options);
      const dir = writeKernel(label(p), cuda);
      const nvcc = await tool('nvcc', [
        '-c',
        '-O3',
        gencode(p.options.arch),
        ...STRICT,
        '-o',
        join(dir, `${cuda.api.stem}.o`),
        join(dir, cuda.api.source),
      ]);
      return { ...p, cuda, nvcc };
    }),
    CONCURRENT_BUILDS,
  );
}, 1_200_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  if (report.length === 0) return;
  mkdirSync(join(repoRoot, 'build'), { recursive: true });
  writeFileSync(join(repoRoot, 'build', 'cuda-builds.json'), JSON.stringify(report, null, 2) + '\n');
  const columns: [string, (r: ReportRow) => string | number][] = [
    ['kernel', (r) => `${r.spec} ${r.arch} ${r.dtype}`],
    ['regs', (r) => r.registers],
    ['stack', (r) => r.stackFrameBytes],
    ['spill st/ld', (r) => `${r.spillStoreBytes}/${r.spillLoadBytes}`],
    ['smem dyn', (r) => r.dynamicSharedBytes],
    ['smem static', (r) => r.staticSharedBytes],
    ['scratch/block', (r) => r.scratchBytesPerBlock],
    ['nvcc s', (r) => r.nvccSeconds.toFixed(1)],
  ];
  const cells = [columns.map(([h]) => h), ...report.map((r) => columns.map(([, f]) => String(f(r))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  console.log(
    `CUDA kernels (nvcc -c, ${CONCURRENT_BUILDS} at a time; build/cuda-builds.json):\n${cells.map((row) => row.map((c, i) => c.padEnd(widths[i])).join('  ')).join('\n')}`,
  );
});

describe('CUDA kernels build with nvcc without a warning', () => {
  for (const p of PLANNED) {
    it(label(p), () => {
      const b = builds.find((x) => x.spec === p.spec && x.options === p.options)!;
      expect(b.nvcc.ok, b.nvcc.output).toBe(true);
      expect(b.nvcc.output).not.toMatch(/warning/i);
      const row: ReportRow = {
        spec: p.spec,
        arch: p.options.arch,
        dtype: p.options.dtype,
        ...ptxasReport(b.nvcc.output, b.cuda.api.kernel),
        dynamicSharedBytes: b.cuda.sharedBytes,
        scratchBytesPerBlock: b.cuda.kernel.scratchFloats * 4,
        nvccSeconds: b.nvcc.seconds,
      };
      report.push(row);
      expect(row.dynamicSharedBytes + row.staticSharedBytes).toBeLessThanOrEqual(b.cuda.arch.limits.workgroupBytes);
      // No example's kernel spills, under launch bounds that ask for the blocks per SM its shared
      // memory allows (targets/cuda/arch.ts minBlocksPerSm): no local-memory traffic at all.
      if (!UNUSUAL.has(p.spec))
        expect([row.stackFrameBytes, row.spillStoreBytes, row.spillLoadBytes]).toEqual([0, 0, 0]);
    });
  }
});

/** A C program that calls the launcher with one bad argument at a time and prints `case, status, message`. */
function launcherDriver(cuda: CudaKernel): string {
  const { api, tensors } = cuda;
  const firstView = identifier(tensors.find((t) => t.role === 'view')!);
  const firstStateOut = identifier(tensors.find((t) => t.role === 'state' && t.io === 'out')!);
  return `#include <stdio.h>
#include <stdlib.h>
#include <cuda_runtime_api.h>
#include "${api.header}"

/* Device memory where there is a device; else host memory, which the launcher checks but never reads. */
static float* buffer(size_t floats) {
  void* p = NULL;
  if (cudaMalloc(&p, floats * sizeof(float)) == cudaSuccess && cudaMemset(p, 0, floats * sizeof(float)) == cudaSuccess) return (float*)p;
  return (float*)calloc(floats, sizeof(float));
}

static void report(const char* name, int status) {
  printf("%s\\t%d\\t%s\\n", name, status, ${api.lastError}());
}

int main(void) {
  ${api.args} good = {0}, a;
  /* One sequence, head and token: each tensor holds its per-token (or per-head) shape. */
  good.B = 1;
  good.H = 1;
  good.T = 1;
${tensors.map((t) => `  good.${identifier(t)} = buffer(${size(t.shape)});`).join('\n')}
  good.scratch_bytes = ${api.scratchBytes}(1, 1);
  good.scratch = good.scratch_bytes ? buffer(good.scratch_bytes / sizeof(float)) : NULL;

  report("valid", ${api.forward}(&good, 0));
  report("args NULL", ${api.forward}(NULL, 0));
  a = good; a.${firstView} = NULL; report("${firstView} NULL", ${api.forward}(&a, 0));
  a = good; a.output = (float*)((char*)good.output + 2); report("output misaligned", ${api.forward}(&a, 0));
  a = good; a.T = 0; report("T = 0", ${api.forward}(&a, 0));
  a = good; a.B = -1; report("B = -1", ${api.forward}(&a, 0));
  a = good; a.B = 65536; a.H = 65536; report("B * H = 2^32", ${api.forward}(&a, 0));
  a = good; a.start = -1; report("start = -1", ${api.forward}(&a, 0));
  a = good; a.start = ${api.macro}_K; report("start = K", ${api.forward}(&a, 0));
  a = good; a.${firstStateOut} = good.output; report("output overlaps ${firstStateOut}", ${api.forward}(&a, 0));
  a = good; a.scratch_bytes = good.scratch_bytes ? good.scratch_bytes - 4 : 0; report("scratch 4 bytes short", ${api.forward}(&a, 0));
  printf("scratch_bytes(2, 3)\\t%zu\\n", ${api.scratchBytes}(2, 3));
  printf("scratch_bytes(0, 3)\\t%zu\\n", ${api.scratchBytes}(0, 3));
  return 0;
}
`;
}

/** Status codes, as the header numbers them. */
const OK = 0;
const NULL_POINTER = 1;
const MISALIGNED = 2;
const BAD_SIZE = 3;
const BAD_START = 4;
const SCRATCH_TOO_SMALL = 5;
const OVERLAP = 6;
const CUDA = 8;

describe('the launcher checks its arguments before launching', () => {
  // ttt_mlp needs global scratch and opts in to more than 48 KB of shared memory; ttt_linear at
  // D = 32 needs neither and launches directly.
  for (const { spec, D } of [
    { spec: 'ttt_mlp.ttt', D: 64 },
    { spec: 'ttt_linear.ttt', D: 32 },
  ]) {
    it(`${spec} at D = ${D}`, async () => {
      const cuda = renderCuda(compileExample(spec, 'auto', { D }), { arch: 'sm_90', dtype: 'f32' });
      const dir = writeKernel(`launcher-${spec}-${D}`, cuda);
      writeFileSync(join(dir, 'driver.c'), launcherDriver(cuda));
      const exe = join(dir, 'driver');
      const built = await tool('nvcc', [
        '-O1',
        gencode('sm_90'),
        ...STRICT,
        '-o',
        exe,
        join(dir, 'driver.c'),
        join(dir, cuda.api.source),
      ]);
      expect(built.ok, built.output).toBe(true);
      const ran = await tool(exe, []);
      expect(ran.ok, ran.output).toBe(true);
      const lines = new Map(
        ran.output
          .trim()
          .split('\n')
          .map((l) => l.split('\t'))
          .map(([name, ...rest]) => [name, rest]),
      );
      const status = (name: string) => ({ status: Number(lines.get(name)?.[0]), message: lines.get(name)?.[1] });

      const K = cuda.kernel.chunk.K;
      const firstView = identifier(cuda.tensors.find((t) => t.role === 'view')!);
      expect(status('args NULL')).toEqual({ status: NULL_POINTER, message: 'args is NULL' });
      expect(status(`${firstView} NULL`)).toEqual({ status: NULL_POINTER, message: `${firstView} is NULL` });
      expect(status('output misaligned').status).toBe(MISALIGNED);
      expect(status('output misaligned').message).toMatch(/^output \(0x[0-9a-f]+\) is not 4-byte aligned$/);
      expect(status('T = 0')).toEqual({ status: BAD_SIZE, message: 'B = 1, H = 1, T = 0: each must be at least 1' });
      expect(status('B = -1')).toEqual({ status: BAD_SIZE, message: 'B = -1, H = 1, T = 1: each must be at least 1' });
      expect(status('B * H = 2^32')).toEqual({
        status: BAD_SIZE,
        message: "B * H = 4294967296 blocks exceed the grid's 2^31 - 1",
      });
      expect(status('start = -1')).toEqual({ status: BAD_START, message: `start = -1 is outside [0, ${K})` });
      expect(status('start = K')).toEqual({ status: BAD_START, message: `start = ${K} is outside [0, ${K})` });
      expect(status([...lines.keys()].find((n) => n.startsWith('output overlaps'))!)).toMatchObject({
        status: OVERLAP,
        message: expect.stringMatching(/^output and out_state_\w+ overlap; /),
      });
      const scratch = cuda.kernel.scratchFloats * 4;
      expect(lines.get('scratch_bytes(2, 3)')).toEqual([String(6 * scratch)]);
      expect(lines.get('scratch_bytes(0, 3)')).toEqual(['0']);
      if (scratch > 0) {
        expect(status('scratch 4 bytes short')).toEqual({
          status: SCRATCH_TOO_SMALL,
          message: `scratch_bytes = ${scratch - 4}, but B = 1, H = 1 need ${scratch} (${cuda.api.scratchBytes})`,
        });
      }
      // With no GPU the valid call fails cleanly in the CUDA runtime; with one, it launches.
      const valid = status('valid');
      if (valid.status !== OK) {
        expect(valid.status, valid.message).toBe(CUDA);
        expect(valid.message).toMatch(/^(cudaGetDevice|launching the kernel) failed: cuda\w+ \(.+\)$/);
      }
    });
  }
});

describe('the PyTorch binding', () => {
  it('every generated .py, and scripts/gpu_check.py, compile with python3', async () => {
    const files = [join(repoRoot, 'scripts', 'gpu_check.py')];
    for (const spec of exampleFiles) {
      const cuda = renderCuda(compileExample(spec), { arch: 'sm_90', dtype: 'f32' });
      files.push(join(writeKernel(`python-${spec}`, cuda), cuda.api.python));
    }
    const compiled = await tool('python3', ['-m', 'py_compile', ...files]);
    expect(compiled.ok, compiled.output).toBe(true);
  });
});
