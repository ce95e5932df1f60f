/**
 * `tttc compile --target cuda --report`: what each generated CUDA kernel costs, read back from the
 * files the compile wrote (targets/cuda/readback.ts), as the static report of the examples reads
 * them (bench/cuda-report.ts): threads and dynamic shared memory from the launcher, block and warp
 * barriers per mini-batch from the kernel's loop. With nvcc on PATH, also ptxas's registers and
 * spills, the PTX's tensor-core and FMA instructions, and blocks per SM by the occupancy
 * calculator's rules (targets/cuda/occupancy.ts); without it, blocks per SM by shared memory alone.
 * Nothing runs on a GPU.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Occupancy, occupancy, occupancyLimits } from '../targets/cuda/occupancy.ts';
import {
  type Barriers,
  barriers,
  type Counts,
  launches,
  ptxasResources,
  ptxCounts,
  type Resources,
} from '../targets/cuda/readback.ts';
import type { GeneratedFile } from '../targets/target.ts';

const run = promisify(execFile);

export interface KernelReport {
  /** The .cu file that defines it. */
  file: string;
  kernel: string;
  threads: number;
  dynamicSharedBytes: number;
  /** Global scratch per block, written and read in the loop (0: everything on chip). */
  scratchBytes: number;
  barriers: Barriers;
  /** What nvcc says, when it ran. */
  nvcc?: Resources & { ptx: Counts };
  /** Blocks per SM: from registers, shared memory and warps with nvcc's registers, else from shared memory alone. */
  occupancy: Occupancy;
}

export interface CudaReport {
  arch: string;
  /** nvcc's version line, or why it did not run. */
  nvcc: { version: string } | { missing: string };
  kernels: KernelReport[];
}

async function nvccVersion(): Promise<string | undefined> {
  try {
    return (await run('nvcc', ['--version'])).stdout.trim().split('\n').at(-1);
  } catch {
    return undefined;
  }
}

/** ptxas -v's log and the PTX of one generated source, built beside the files it includes. */
async function build(files: readonly GeneratedFile[], cu: string, arch: string): Promise<{ log: string; ptx: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tttc-report-'));
  try {
    for (const f of files) await writeFile(join(dir, f.path), f.contents);
    const keep = join(dir, 'keep');
    await mkdir(keep);
    const args = [
      `-arch=${arch}`,
      '-cubin',
      '-Xptxas',
      '-v',
      '--keep',
      '--keep-dir',
      keep,
      '-o',
      join(dir, 'k.cubin'),
      cu,
    ];
    const { stdout, stderr } = await run('nvcc', args, { cwd: dir, maxBuffer: 1 << 26 }).catch((e) => {
      throw new Error(`nvcc could not build ${cu} for ${arch}:\n${(e as { stderr?: string }).stderr ?? String(e)}`);
    });
    const ptx = await readFile(join(keep, cu.replace(/\.cu$/, '.ptx')), 'utf8');
    return { log: stdout + stderr, ptx };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The report of every kernel in the generated `.cu` files among `files`. */
export async function cudaReport(files: readonly GeneratedFile[], arch: string): Promise<CudaReport> {
  const version = await nvccVersion();
  const limits = occupancyLimits(arch);
  const kernels: KernelReport[] = [];
  for (const cu of files.filter((f) => f.path.endsWith('.cu'))) {
    const built = version ? await build(files, cu.path, arch) : undefined;
    const resources = built ? ptxasResources(built.log) : undefined;
    const counts = built ? ptxCounts(built.ptx) : undefined;
    for (const [kernel, launch] of launches(cu.contents)) {
      const r = resources?.get(kernel);
      const ptx = counts?.get(kernel);
      if (built && (!r || !ptx)) throw new Error(`nvcc reported nothing for ${kernel} in ${cu.path}`);
      const shared = launch.dynamicSharedBytes + (r?.staticSharedBytes ?? 0);
      kernels.push({
        file: cu.path,
        kernel,
        ...launch,
        barriers: barriers(cu.contents, kernel),
        ...(r && ptx ? { nvcc: { ...r, ptx } } : {}),
        // Without registers, a block's are taken as the fewest ptxas may use, so shared memory and warps decide.
        occupancy: occupancy(limits, launch.threads, r?.registers ?? 1, shared),
      });
    }
  }
  const nvcc = version ? { version } : { missing: 'nvcc is not on PATH' };
  return { arch, nvcc, kernels };
}

const kb = (bytes: number) => (bytes / 1024).toFixed(1);

/** The report as a table, one line a kernel, and what its columns are. */
export function formatCudaReport(r: CudaReport): string[] {
  const withNvcc = 'version' in r.nvcc;
  const source =
    'version' in r.nvcc
      ? `regs, spill bytes (stores and loads) from ptxas -v; mma and fma.f32: static counts in the PTX (${r.nvcc.version})`
      : `${r.nvcc.missing}: no registers, spills or instruction counts, and blocks/SM from shared memory and warps alone`;
  const header = [
    'kernel',
    'threads',
    'smem KB',
    'scratch KB',
    'blocks/SM',
    'block barriers',
    'warp barriers',
    ...(withNvcc ? ['regs', 'spill B', 'mma', 'fma.f32'] : []),
  ];
  const rows = r.kernels.map((k) => [
    k.kernel,
    String(k.threads),
    kb(k.dynamicSharedBytes + (k.nvcc?.staticSharedBytes ?? 0)),
    kb(k.scratchBytes),
    `${k.occupancy.blocks} (${k.occupancy.limiter})`,
    String(k.barriers.perMinibatch),
    String(k.barriers.warpPerMinibatch),
    ...(k.nvcc
      ? [
          String(k.nvcc.registers),
          String(k.nvcc.spillStores + k.nvcc.spillLoads),
          String(k.nvcc.ptx.mma + k.nvcc.ptx.wgmma),
          String(k.nvcc.ptx.ffma),
        ]
      : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [
    `CUDA kernels for ${r.arch}, read back from the generated code (nothing ran on a GPU):`,
    line(header),
    ...rows.map(line),
    "barriers: per mini-batch, in the kernel's loop over them, each counted once; scratch: global memory a block writes and reads back in the loop; blocks/SM: resident blocks and the limit that binds",
    source,
  ];
}
