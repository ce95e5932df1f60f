/**
 * A static report per generated CUDA kernel (no GPU): every example compiled for cuda through the
 * compiler API, for sm_80 and sm_90 and f32 and bf16 operands; per kernel (prefill and decode) the
 * registers, spills, stack and shared memory from `ptxas -v` and the launcher, blocks per SM by the
 * occupancy rules, barriers per mini-batch from the generated source, instruction counts from the
 * PTX, and which per-token inputs the kernel reads ahead with cp.async (compiler/schedule/prefetch.ts);
 * for TTT-Linear and TTT-MLP also their bf16-I/O kernels and their backward's (the checkpointing
 * forward and the backward), each with the registers, shared memory, blocks per SM and barriers of
 * the same kernel without the read-ahead. nvcc outputs are cached by source digest, so a rerun is fast. Per example,
 * the bytes a token reads and writes in global memory with f32 and with bf16 I/O (`--io bf16`),
 * from the signature, for the forward and for the fused backward's backward kernel.
 *
 *   npm run report:cuda [-- --out build/cuda-report.json]
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { compile } from '../api/index.ts';
import type { OnChipLayout } from '../compiler/kernel/ir.ts';
import { lowerKernel } from '../compiler/kernel/lower.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { acrossWarps } from '../compiler/schedule/barriers.ts';
import { prefetchBarriers, tokenRows, withPrefetch } from '../compiler/schedule/prefetch.ts';
import type { ScheduledKernel, TargetLimits } from '../compiler/schedule/kernel.ts';
import { rateBlockSize, residentHeads } from '../compiler/schedule/workgroup-size.ts';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { lowerBackwardKernel } from '../compiler/kernel/backward.ts';
import { lowerCheckpointingKernel } from '../compiler/kernel/checkpoint.ts';
import { renderCudaBackward } from '../targets/cuda/backward.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { CUDA_FEATURES } from '../targets/cuda/kernel.ts';
import { renderCuda, scheduleForward } from '../targets/cuda/render.ts';
import { bytesPerToken, trainingTensors } from '../targets/cuda/tensors.ts';
import { allPorts, type Io, withIo } from '../core/signature.ts';
import { ARCHS, type Occupancy, occupancy } from '../targets/cuda/occupancy.ts';
import {
  type Barriers,
  type Counts,
  type Resources,
  barriers,
  launches,
  ptxCounts,
  ptxasResources,
} from '../targets/cuda/readback.ts';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const cacheDir = join(root, 'node_modules/.cache/tttc/cuda-report');
const DTYPES = ['f32', 'bf16'] as const;
/** tf32x3 (tensor cores at f32's accuracy), reported for the BASELINES layers with f32 I/O. */
const SPLIT = 'tf32x3' as const;
const IOS = ['f32', 'bf16'] as const;
/** At most this many nvcc processes at once (the machine is shared). */
const PARALLEL = 2;
/**
 * The layers whose kernels are also built without the read-ahead, to show what it costs, and whose
 * bf16-I/O forward and backward kernels (checkpointing forward and backward) are reported too.
 */
const BASELINES = new Set(['examples/ttt_linear.ttt', 'examples/ttt_mlp.ttt']);

const outArg = process.argv.indexOf('--out');
const outPath = resolve(root, outArg > 0 ? process.argv[outArg + 1] : 'build/cuda-report.json');

interface KernelReport extends Resources, Barriers {
  example: string;
  arch: string;
  dtype: string;
  /** How the call's tensors are stored (`--io`). */
  io: Io;
  kernel: string;
  variant: Variant;
  threads: number;
  dynamicSharedBytes: number;
  /** Global scratch per block, written and read in the loop. */
  scratchBytes: number;
  /** Block barriers the scheduler placed after the stages of one mini-batch (ScheduledKernel.barriers), to check the count in the source. */
  scheduledBarriers: number;
  /** Shared-memory bank conflicts from the kernel IR (compiler/kernel/banks.ts), row-major and with the chosen layouts. */
  banks?: OnChipLayout;
  /** The per-token inputs (program keys) the kernel copies ahead with cp.async while the chunk before computes. */
  prefetch: string[];
  /** The same kernel staging every input from global memory (BASELINES only). */
  withoutPrefetch?: {
    registers: number;
    dynamicSharedBytes: number;
    blocks: number;
    spillStores: number;
    perMinibatch: number;
  };
  occupancy: Occupancy;
  ptx: Counts;
  /** SASS counts when cuobjdump is on the machine. */
  sass?: { hmma: number; hgmma: number; ffma: number };
  /** The scheduler's static model of an SM (compiler/schedule/workgroup-size.ts), in cycles per head and mini-batch. */
  model?: Model;
}

/** The block-size model's cycles per head and mini-batch: with as many heads resident as fit, and alone on an SM. */
interface Model {
  full: number;
  alone: number;
  resident: number;
}

/** Which kernel: the forward's prefill and decode, the backward's checkpointing forward and backward. */
type Variant = 'prefill' | 'decode' | 'checkpoints' | 'backward';
const variantOf = (kernel: string): Variant =>
  kernel.endsWith('_decode_kernel')
    ? 'decode'
    : kernel.endsWith('_checkpoints_kernel')
      ? 'checkpoints'
      : kernel.endsWith('_backward_kernel')
        ? 'backward'
        : 'prefill';

/** What the report reads from a kernel's schedule. */
interface Scheduled {
  barriers: number;
  banks: OnChipLayout;
  prefetch: string[];
  model: Model;
}

function described(k: ScheduledKernel, banks: OnChipLayout, limits: TargetLimits): Scheduled {
  const prefetch = [...(k.prefetch ?? [])].map(([id, slot]) => {
    const op = k.program.nodes[id].op;
    return `${op.kind === 'input' ? op.name : `%${id}`}${slot.elementBytes === 2 ? ' (bf16)' : ''}`;
  });
  const { full, alone } = rateBlockSize(k, limits);
  const model = { full: Math.round(full), alone: Math.round(alone), resident: residentHeads(limits, k) };
  return { barriers: k.barriers.filter(acrossWarps).length + prefetchBarriers(k), banks, prefetch, model };
}

/** One .cu to build, and the same file without the read-ahead (BASELINES). */
interface Build {
  cu: string;
  baseline?: { path: string; contents: string }[];
}

interface Skipped {
  example: string;
  arch: string;
  dtype: string;
  code: string;
  reason: string;
}

interface NvccResult {
  ptxasLog: string;
  counts: Record<string, Counts>;
  sass?: Record<string, { hmma: number; hgmma: number; ffma: number }>;
}

async function has(tool: string): Promise<boolean> {
  try {
    await run('which', [tool]);
    return true;
  } catch {
    return false;
  }
}

const nvccVersion = (await run('nvcc', ['--version'])).stdout.trim().split('\n').at(-1) ?? '';
const withSass = await has('cuobjdump');

/** SASS counts per kernel from `cuobjdump -sass`, whose functions start at `Function : <symbol>`. */
function sassCounts(sass: string): Record<string, { hmma: number; hgmma: number; ffma: number }> {
  const out: Record<string, { hmma: number; hgmma: number; ffma: number }> = {};
  for (const part of sass.split(/\s+Function : /).slice(1)) {
    const symbol = /^(\S+)/.exec(part)?.[1] ?? '';
    const name = /^_Z(\d+)/.exec(symbol);
    const key = name ? symbol.slice(name[0].length, name[0].length + Number(name[1])) : symbol;
    const count = (re: RegExp) => part.match(re)?.length ?? 0;
    out[key] = { hmma: count(/\bHMMA\b/g), hgmma: count(/\bHGMMA\b/g), ffma: count(/\bFFMA\b/g) };
  }
  return out;
}

/** PTX and ptxas -v for one generated source, from the cache when the same source was compiled before. */
async function nvcc(files: { path: string; contents: string }[], cu: string, arch: string): Promise<NvccResult> {
  const digest = createHash('sha256');
  for (const f of files) digest.update(f.path).update('\0').update(f.contents).update('\0');
  digest.update(cu).update(arch).update(nvccVersion).update(String(withSass));
  const cached = join(cacheDir, `${digest.digest('hex')}.json`);
  if (existsSync(cached)) return JSON.parse(readFileSync(cached, 'utf8')) as NvccResult;
  const dir = mkdtempSync(join(tmpdir(), 'tttc-report-'));
  try {
    for (const f of files) writeFileSync(join(dir, f.path), f.contents);
    const ptx = join(dir, 'k.ptx');
    const cubin = join(dir, 'k.cubin');
    await run('nvcc', [`-arch=${arch}`, '-ptx', '-o', ptx, cu], { cwd: dir });
    // ptxas on nvcc's PTX is what `nvcc -Xptxas -v` runs; it reports on stderr.
    const { stderr } = await run('ptxas', [`-arch=${arch}`, '-v', '-o', cubin, ptx], { cwd: dir });
    const result: NvccResult = {
      ptxasLog: stderr,
      counts: Object.fromEntries(ptxCounts(readFileSync(ptx, 'utf8'))),
    };
    if (withSass) result.sass = sassCounts((await run('cuobjdump', ['-sass', cubin], { maxBuffer: 1 << 28 })).stdout);
    mkdirSync(cacheDir, { recursive: true });
    writeFileSync(cached, JSON.stringify(result));
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pool<T>(jobs: (() => Promise<T>)[], width: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, jobs.length) }, worker));
  return results;
}

const specs = ['examples', 'examples/rules'].flatMap((d) =>
  readdirSync(join(root, d))
    .filter((f) => f.endsWith('.ttt'))
    .sort()
    .map((f) => join(d, f)),
);

/** Global-memory bytes per token and (sequence, head), f32 vs bf16 I/O: the forward's and the backward kernel's. */
interface TokenBytes {
  example: string;
  io: Record<Io, { read: number; written: number }>;
  backward: Record<Io, { read: number; written: number }>;
}

const skipped: Skipped[] = [];
const tokenBytes: TokenBytes[] = [];
const jobs: (() => Promise<KernelReport[]>)[] = [];
for (const spec of specs) {
  const source = readFileSync(join(root, spec), 'utf8');
  const checked = compileSpec(source, { file: basename(spec) });
  if (checked.ok) {
    const ports = allPorts(checked.compiled.signature);
    const io = (x: Io) => bytesPerToken(withIo(ports, x));
    const backward = (x: Io) => bytesPerToken(trainingTensors(checked.compiled.signature, x).backward);
    tokenBytes.push({
      example: spec,
      io: { f32: io('f32'), bf16: io('bf16') },
      backward: { f32: backward('f32'), bf16: backward('bf16') },
    });
  }
  for (const arch of Object.keys(ARCHS) as (keyof typeof ARCHS)[])
    for (const dtype of BASELINES.has(spec) ? [...DTYPES, SPLIT] : DTYPES)
      for (const io of !BASELINES.has(spec) || dtype === SPLIT ? (['f32'] as const) : IOS) {
        const out = await compile(source, { file: basename(spec), targets: ['cuda'], arch, dtype, io });
        if (!out.ok) {
          const d = out.diagnostics.find((x) => x.severity === 'error');
          skipped.push({ example: spec, arch, dtype, code: d?.code ?? '?', reason: d?.message ?? 'no diagnostic' });
          continue;
        }
        if (!checked.ok) throw new Error(`${spec}: compiles through the API but not through compileSpec`);
        const c = checked.compiled;
        const files = out.files.filter((f) => /\.(cu|cuh|h)$/.test(f.path));
        const limits = archOf(arch).limits;
        const lines = source.split('\n');
        // Per kernel name: the scheduler's block barriers, the kernel IR's bank conflicts and the
        // inputs read ahead, as the renderers plan them (the forward's for this io, the backward's).
        const forward = renderCuda(c, { arch, dtype, io });
        const scheduled = new Map<string, Scheduled>(
          c.variants.map((v) => {
            const ahead = (k: ScheduledKernel) => withPrefetch(k, limits, tokenRows(forward.tensors));
            const k = scheduleForward(v.chunk, archOf(arch), { dtype }, ahead);
            const name = v.name === 'decode' ? forward.api.decodeKernel : forward.api.kernel;
            return [name, described(k, lowerKernel(k, c.signature, lines, CUDA_FEATURES).onChip, limits)];
          }),
        );
        const builds: Build[] = [
          {
            cu: forward.api.source,
            baseline: BASELINES.has(spec) ? renderCuda(c, { arch, dtype, io }, { prefetch: false }).files : undefined,
          },
        ];
        // The backward's kernels, for the layers also built without the read-ahead.
        if (BASELINES.has(spec)) {
          const b = renderCudaBackward(c, { arch, dtype, io });
          const { checkpoints, backward } = b.kernels;
          scheduled.set(
            b.api.decodeKernel,
            described(
              checkpoints,
              lowerCheckpointingKernel(checkpoints, c.signature, lines, CUDA_FEATURES).onChip,
              limits,
            ),
          );
          const derived = deriveChunkBackward(c.chunk);
          scheduled.set(
            b.api.kernel,
            described(
              backward,
              lowerBackwardKernel(backward, derived, c.signature, lines, CUDA_FEATURES).onChip,
              limits,
            ),
          );
          builds.push({
            cu: b.api.source,
            baseline: renderCudaBackward(c, { arch, dtype, io }, { prefetch: false }).files,
          });
        }
        for (const build of builds) {
          const cu = files.find((f) => f.path === build.cu);
          if (!cu) throw new Error(`${spec}: the cuda target emitted no ${build.cu}`);
          const baseline = build.baseline?.filter((f) => /\.(cu|cuh|h)$/.test(f.path));
          jobs.push(async () => {
            const result = await nvcc(files, cu.path, arch);
            const resources = ptxasResources(result.ptxasLog);
            const before = baseline && ptxasResources((await nvcc(baseline, cu.path, arch)).ptxasLog);
            const baselineSource = baseline?.find((f) => f.path === cu.path)!.contents;
            const beforeLaunches = baselineSource === undefined ? undefined : launches(baselineSource);
            return [...launches(cu.contents)].map(([kernel, launch]): KernelReport => {
              const r = resources.get(kernel);
              const counts = result.counts[kernel];
              if (!r || !counts) throw new Error(`${spec} ${arch} ${dtype}: nvcc reported nothing for ${kernel}`);
              const shared = r.staticSharedBytes + launch.dynamicSharedBytes;
              const b = before?.get(kernel);
              const bLaunch = beforeLaunches?.get(kernel);
              const withoutPrefetch = b &&
                bLaunch && {
                  registers: b.registers,
                  dynamicSharedBytes: bLaunch.dynamicSharedBytes,
                  blocks: occupancy(
                    ARCHS[arch],
                    bLaunch.threads,
                    b.registers,
                    b.staticSharedBytes + bLaunch.dynamicSharedBytes,
                  ).blocks,
                  spillStores: b.spillStores,
                  perMinibatch: barriers(baselineSource!, kernel).perMinibatch,
                };
              const planned = scheduled.get(kernel);
              return {
                example: spec,
                arch,
                dtype,
                io,
                kernel,
                variant: variantOf(kernel),
                ...r,
                ...launch,
                ...barriers(cu.contents, kernel),
                scheduledBarriers: planned?.barriers ?? -1,
                banks: planned?.banks,
                prefetch: planned?.prefetch ?? [],
                ...(planned && { model: planned.model }),
                ...(withoutPrefetch && { withoutPrefetch }),
                occupancy: occupancy(ARCHS[arch], launch.threads, r.registers, shared),
                ptx: counts,
                ...(result.sass?.[kernel] && { sass: result.sass[kernel] }),
              };
            });
          });
        }
      }
}

const started = performance.now();
const kernels = (await pool(jobs, PARALLEL)).flat();
const seconds = (performance.now() - started) / 1000;

const kb = (bytes: number) => (bytes / 1024).toFixed(1);
const header = [
  'example',
  'arch',
  'dtype',
  'io',
  'kernel',
  'thr',
  'regs',
  'spill',
  'stack',
  'smem KB (s+d)',
  'scratch KB',
  'blk/SM',
  'limit',
  'bar/mb',
  'warp/mb',
  'mma',
  'wgmma',
  'ldmatrix',
  'fma.f32',
  'cvt.bf16',
  'bank worst',
  'wavefronts/req',
  'read ahead',
];
const rows = kernels.map((k) => [
  k.example.replace(/^examples\//, ''),
  k.arch,
  k.dtype,
  k.io,
  k.variant,
  String(k.threads),
  String(k.registers),
  `${k.spillStores}/${k.spillLoads}`,
  String(k.stackBytes),
  `${kb(k.staticSharedBytes)}+${kb(k.dynamicSharedBytes)}`,
  kb(k.scratchBytes),
  String(k.occupancy.blocks),
  k.occupancy.limiter,
  [
    String(k.perMinibatch),
    k.inInnerLoops ? ` (${k.inInnerLoops} in loops)` : '',
    k.scheduledBarriers === k.perMinibatch ? '' : ` (scheduled ${k.scheduledBarriers})`,
  ].join(''),
  String(k.warpPerMinibatch),
  String(k.ptx.mma),
  String(k.ptx.wgmma),
  String(k.ptx.ldmatrix),
  String(k.ptx.ffma),
  String(k.ptx.cvtBf16),
  k.banks ? `${k.banks.rowMajor.worst} -> ${k.banks.chosen.worst}` : '?',
  k.banks
    ? `${k.banks.rowMajor.wavefrontsPerRequest.toFixed(2)} -> ${k.banks.chosen.wavefrontsPerRequest.toFixed(2)}`
    : '?',
  k.prefetch.length ? k.prefetch.join(' ') : '-',
]);
const table = [header, ...rows];
const widths = header.map((_, i) => Math.max(...table.map((r) => r[i].length)));
const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
console.log(`static CUDA report (no GPU): ${nvccVersion}; ${jobs.length} nvcc builds in ${seconds.toFixed(1)} s`);
console.log(line(header));
console.log(line(widths.map((w) => '-'.repeat(w))));
for (const r of rows) console.log(line(r));
console.log(
  'read ahead (cp.async), without -> with: registers, dynamic shared memory (KB), blocks per SM, block barriers per mini-batch, spill stores',
);
for (const k of kernels)
  if (k.withoutPrefetch) {
    const w = k.withoutPrefetch;
    console.log(
      `  ${k.example.replace(/^examples\//, '')} ${k.arch} ${k.dtype} io ${k.io} ${k.variant}: regs ${w.registers} -> ${k.registers}, ` +
        `smem ${kb(w.dynamicSharedBytes)} -> ${kb(k.dynamicSharedBytes)}, blocks/SM ${w.blocks} -> ${k.occupancy.blocks}, ` +
        `bar/mb ${w.perMinibatch} -> ${k.perMinibatch}, spills ${w.spillStores} -> ${k.spillStores}` +
        (k.prefetch.length ? ` (reads ${k.prefetch.join(', ')} ahead)` : ' (reads nothing ahead)'),
    );
  }
console.log('\nglobal memory per token and (sequence, head), read + written bytes: f32 I/O -> bf16 I/O (--io bf16)');
const ioBytes = ({ f32, bf16 }: TokenBytes['io']) =>
  `${f32.read} + ${f32.written} = ${f32.read + f32.written} -> ` +
  `${bf16.read} + ${bf16.written} = ${bf16.read + bf16.written} (${((f32.read + f32.written) / (bf16.read + bf16.written)).toFixed(2)}x fewer)`;
for (const t of tokenBytes)
  console.log(`  ${t.example.replace(/^examples\//, '')}: ${ioBytes(t.io)}; backward kernel ${ioBytes(t.backward)}`);
for (const s of skipped) console.log(`skipped ${s.example} ${s.arch} ${s.dtype}: ${s.code} ${s.reason}`);
console.log(
  withSass
    ? 'SASS counts from cuobjdump are in the JSON.'
    : 'cuobjdump is not on this machine: counts are from the PTX only.',
);
console.log(
  'bank conflicts (compiler/kernel/banks.ts, a 32-lane warp, 32 banks of 4 bytes): worst wavefronts of one request and average per conflict-free wavefront, with every shared buffer row-major -> with the chosen swizzles.',
);

mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(
  outPath,
  JSON.stringify(
    {
      generated: new Date().toISOString(),
      nvcc: nvccVersion,
      barriers:
        'perMinibatch: __syncthreads() in the generated mini-batch loop (the kernel outermost while), each counted once; warpPerMinibatch: __syncwarp() there (the warp barriers between stages whose rows warps own, and those inside tensor-core products); scheduledBarriers: the stages with a block barrier in compiler/schedule (ScheduledKernel.barriers)',
      occupancy:
        'CUDA occupancy calculator rules: warps, registers (256 per warp unit), shared memory (128-byte unit + 1 KB reserved per block), 32 blocks',
      prefetch:
        'prefetch: the per-token inputs whose next chunk (the one before, in the backward) the kernel copies to shared memory with cp.async while the current one computes (compiler/schedule/prefetch.ts), marked (bf16) where the copies move bf16 rows the stage widens; withoutPrefetch: registers, dynamic shared memory, blocks per SM, spill stores and block barriers per mini-batch of the same kernel with every input staged from global memory',
      bankConflicts:
        'banks: from the kernel IR (compiler/kernel/banks.ts) for a 32-lane warp and 32 banks of 4 bytes; worst: the most wavefronts one request phase takes; wavefrontsPerRequest: wavefronts per conflict-free wavefront, weighted by how often a warp makes each request per chunk; rowMajor: every shared buffer row-major; chosen: with the swizzles listed',
      archs: ARCHS,
      globalBytesPerToken:
        'per example, the bytes one (sequence, head) reads and writes in global memory per token (tensors with a token axis: views, rates, per-token rule inputs, the output), with f32 I/O and with --io bf16 (views and output as bf16); backward: the same for the backward kernel of the fused backward (views, rates and the cotangent of the output read, their gradients written; under --io bf16 the views, the cotangent and the gradients of the views as bf16; its checkpointing forward moves what io does per token); states and params are read and written once per call',
      tokenBytes,
      kernels,
      skipped,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${outPath}`);
