/**
 * What a generated CUDA file and nvcc say about each of its kernels: the launch (threads, dynamic
 * shared memory) read from the launcher's constants, its global scratch from its parameters,
 * block-wide barriers counted in the generated source's mini-batch loop, ptxas's resource usage
 * and instruction counts in the PTX.
 */
import { SCRATCH_ARRAY } from '../clike/print.ts';

export interface Launch {
  threads: number;
  dynamicSharedBytes: number;
  /** Global scratch per block: its slice of the kernel's scratch parameter (0 without one), written and read in the loop. */
  scratchBytes: number;
}

function constant(source: string, name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  const m = new RegExp(`constexpr\\s+\\w+\\s+${name}\\s*=\\s*(\\d+)\\s*;`).exec(source);
  if (!m) throw new Error(`the launcher has no constant ${name}`);
  return Number(m[1]);
}

/** Each kernel's launch, from the launcher's `cudaLaunchConfig_t` blocks (`launch`, or `launch_<kernel>` where a launcher runs two). */
export function launches(source: string): Map<string, Launch> {
  const out = new Map<string, Launch>();
  const re =
    /\b(launch\w*)\.blockDim\s*=\s*dim3\((\w+)\);\s*\1\.dynamicSmemBytes\s*=\s*(\w+);[\s\S]*?cudaLaunchKernelEx\(&\1,\s*(\w+),/g;
  for (const m of source.matchAll(re))
    out.set(m[4], {
      threads: constant(source, m[2]),
      dynamicSharedBytes: constant(source, m[3]),
      scratchBytes: 4 * scratchFloats(source, m[4]),
    });
  return out;
}

/** Where `kernel` is defined in `source`. */
function definition(source: string, kernel: string): number {
  const def = new RegExp(`__global__[^\\n]*\\b${kernel}\\(`).exec(source);
  if (!def) throw new Error(`the source does not define ${kernel}`);
  return def.index;
}

/** The floats of a kernel's slice of scratch, from its last parameter's comment (`[B, H, n]: a slice per block`). */
function scratchFloats(source: string, kernel: string): number {
  const at = definition(source, kernel);
  const opening = source.slice(at, source.indexOf('\n', source.indexOf(') {', at)));
  const m = new RegExp(`\\b${SCRATCH_ARRAY}\\) \\{\\s*// \\[B, H, (\\d+)\\]`).exec(opening);
  return m ? Number(m[1]) : 0;
}

/** The text from `open` (the index of a `{`) to its matching `}`. */
function braced(source: string, open: number): string {
  let depth = 0;
  for (let i = open; i < source.length; i++) {
    if (source[i] === '{') depth++;
    else if (source[i] === '}' && --depth === 0) return source.slice(open, i + 1);
  }
  throw new Error('unbalanced braces in the generated source');
}

export interface Barriers {
  /** `__syncthreads()` in the mini-batch loop, each counted once. */
  perMinibatch: number;
  /** `__syncwarp()` in the mini-batch loop, each counted once (tensor-core products' included). */
  warpPerMinibatch: number;
  /** Of those, the ones inside a nested loop (they run more than once per mini-batch). */
  inInnerLoops: number;
}

/**
 * Barriers per mini-batch of `kernel`, counted in the generated source: the kernel's last outermost
 * `while` is its walk over the mini-batches (a backward counts the chunks in one before it).
 */
export function barriers(commented: string, kernel: string): Barriers {
  // Comments quote the spec, whose braces would unbalance the count.
  const source = commented.replace(/\/\/[^\n]*/g, '');
  const body = braced(source, source.indexOf('{', definition(source, kernel)));
  const whiles = [...body.matchAll(/\n([ \t]*)while \(/g)];
  const outermost = Math.min(...whiles.map((m) => m[1].length));
  const loop = whiles.filter((m) => m[1].length === outermost).at(-1);
  if (!loop) return { perMinibatch: 0, warpPerMinibatch: 0, inInnerLoops: 0 };
  const inner = braced(body, body.indexOf('{', loop.index));
  let perMinibatch = 0;
  let inInnerLoops = 0;
  const warpPerMinibatch = inner.match(/__syncwarp\(\)/g)?.length ?? 0;
  let depth = 0;
  const loops: number[] = [];
  // Track which braces open loops so that a barrier's loop depth is known.
  for (const m of inner.matchAll(
    /(\b(?:for|while)\s*\([^{;]*(?:;[^{;]*){0,2}\)\s*\{)|(\{)|(\})|(__syncthreads\(\))/g,
  )) {
    if (m[1] || m[2]) {
      depth++;
      if (m[1]) loops.push(depth);
    } else if (m[3]) {
      if (loops.at(-1) === depth) loops.pop();
      depth--;
    } else {
      perMinibatch++;
      if (loops.length > 0) inInnerLoops++;
    }
  }
  return { perMinibatch, warpPerMinibatch, inInnerLoops };
}

export interface Resources {
  registers: number;
  spillStores: number;
  spillLoads: number;
  stackBytes: number;
  staticSharedBytes: number;
}

/** The kernel's name from its Itanium-mangled symbol (`_Z13tttc_x_kerneljj...` is `tttc_x_kernel`). */
export function demangledName(symbol: string): string {
  const m = /^_Z(\d+)/.exec(symbol);
  return m ? symbol.slice(m[0].length, m[0].length + Number(m[1])) : symbol;
}

/** ptxas -v's resource lines, per kernel. */
export function ptxasResources(log: string): Map<string, Resources> {
  const out = new Map<string, Resources>();
  for (const block of log.split(/ptxas info\s*: Compiling entry function /).slice(1)) {
    const symbol = /^'([^']+)'/.exec(block)?.[1];
    if (!symbol) continue;
    const num = (re: RegExp) => Number(re.exec(block)?.[1] ?? 0);
    out.set(demangledName(symbol), {
      registers: num(/Used (\d+) registers/),
      spillStores: num(/(\d+) bytes spill stores/),
      spillLoads: num(/(\d+) bytes spill loads/),
      stackBytes: num(/(\d+) bytes stack frame/),
      staticSharedBytes: num(/(\d+) bytes smem/),
    });
  }
  return out;
}

/** The PTX instructions the report counts: tensor-core products and their operands, scalar FMA, bf16 rounding. */
export const COUNTED = {
  mma: /\bmma\.sync\b/g,
  wgmma: /\bwgmma\.mma_async\b/g,
  ldmatrix: /\bldmatrix\b/g,
  ffma: /\bfma\.rn\.f32\b/g,
  cvtBf16: /\bcvt\.rn\.bf16/g,
  barSync: /\bbar\.sync\b|\bbarrier\.sync\b/g,
} as const;

export type Counts = Record<keyof typeof COUNTED, number>;

/** Instruction counts in each `.entry` of a PTX file (static counts: an unrolled loop counts its copies). */
export function ptxCounts(ptx: string): Map<string, Counts> {
  const out = new Map<string, Counts>();
  const entries = [...ptx.matchAll(/\.entry\s+(\w+)\s*\(/g)];
  entries.forEach((e, i) => {
    const text = ptx.slice(e.index, entries[i + 1]?.index ?? ptx.length);
    const counts = Object.fromEntries(
      Object.entries(COUNTED).map(([k, re]) => [k, text.match(re)?.length ?? 0]),
    ) as Counts;
    out.set(demangledName(e[1]), counts);
  });
  return out;
}
