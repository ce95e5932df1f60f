/**
 * Writes everything scripts/gpu_check.py needs to check the CUDA kernels on a GPU, into one folder:
 * the generated kernels, and cases (random and reference-vector inputs with the f64 reference's
 * outputs) as raw little-endian files described by manifest.json.
 *
 *   npx tsx scripts/gpu-cases.ts [--out build/gpu-cases] [--arch sm_90]
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import type { Tensor } from '../core/tensor.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { apiOf } from '../targets/cuda/api.ts';
import { cudaTarget } from '../targets/cuda/target.ts';
import { stem, type TargetOptions } from '../targets/target.ts';
import { roundBf16 } from '../core/bf16.ts';
import type { Io } from '../core/signature.ts';
import { randomInputs } from '../tests/support/inputs.ts';
import { loadReference, REFERENCE_FILES } from '../tests/support/reference-vectors.ts';
import { compileExample, exampleFiles } from '../tests/support/specs.ts';

/** The f32 kernels' tolerance against the f64 reference (relative error), as for WGSL. */
const F32_TOLERANCE = 1e-5;
/** bf16 operands carry 8 significant bits: a looser bound that still catches a wrong kernel. */
const BF16_TOLERANCE = 3e-2;

/** Sizes per example, as in tests/wgsl.test.ts: each D in {32, 64, 128} and each K in {8, 16, 32}. */
const SIZES = [
  { D: 32, K: 8, B: 2, H: 3, T: 21, start: 0, accum: false },
  { D: 64, K: 16, B: 1, H: 2, T: 37, start: 5, accum: true },
  { D: 128, K: 32, B: 2, H: 1, T: 40, start: 31, accum: true },
];

interface FileEntry {
  file: string;
  dtype: 'float32' | 'float64';
  shape: readonly number[];
}

interface Case {
  name: string;
  /** The generated Python module, relative to the folder. */
  module: string;
  start: number;
  tolerance: number;
  /** The output's tolerance, where it differs (a bf16 output: rounded once more). */
  outputTolerance?: number;
  /** Also check that token-by-token decode reproduces this prefill. */
  decode: boolean;
  inputs: Record<string, FileEntry>;
  expected: Record<string, FileEntry>;
}

const { values } = parseArgs({
  options: { out: { type: 'string', default: 'build/gpu-cases' }, arch: { type: 'string', default: 'sm_90' } },
});
const out = values.out!;
rmSync(out, { recursive: true, force: true });
const modules = new Map<string, string>();

/** Generates a kernel once per (spec, sizes, dtype, io, threads) and returns its Python module's path. */
async function kernel(
  spec: string,
  D: number,
  K: number,
  dtype: TargetOptions['dtype'],
  io: Io = 'f32',
  threads?: number,
): Promise<{ module: string; compiled: Compiled }> {
  const compiled = compileExample(spec, 'auto', { D, K });
  const id = `${spec.replace(/\.ttt$/, '')}-D${D}-K${K}-${dtype}${io === 'bf16' ? '-io-bf16' : ''}${threads ? `-t${threads}` : ''}`;
  if (!modules.has(id)) {
    // Every file of `tttc compile --target cuda`: the binding builds the fused backward's source too.
    const files = await cudaTarget.emit(compiled, { arch: values.arch!, dtype, io, ...(threads && { threads }) });
    const dir = join(out, 'kernels', id);
    mkdirSync(dir, { recursive: true });
    for (const f of files) writeFileSync(join(dir, f.path), f.contents);
    modules.set(id, relative(out, join(dir, apiOf(stem(compiled)).python)));
  }
  return { module: modules.get(id)!, compiled };
}

function writeTensors(
  dir: string,
  named: ReadonlyMap<string, Tensor>,
  dtype: FileEntry['dtype'],
): Record<string, FileEntry> {
  mkdirSync(join(out, dir), { recursive: true });
  const entries: Record<string, FileEntry> = {};
  for (const [name, t] of named) {
    const file = join(dir, `${name}.${dtype === 'float32' ? 'f32' : 'f64'}`);
    const data = dtype === 'float32' ? Float32Array.from(t.data) : t.data;
    writeFileSync(join(out, file), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    entries[name] = { file, dtype, shape: t.shape };
  }
  return entries;
}

/** The inputs as the kernel sees them: rounded to f32, so the reference computes from the same values. */
const toF32 = (named: ReadonlyMap<string, Tensor>) =>
  new Map([...named].map(([n, t]) => [n, { shape: t.shape, data: Float64Array.from(Float32Array.from(t.data)) }]));

const cases: Case[] = [];
function addCase(
  c: Omit<Case, 'inputs' | 'expected'>,
  inputs: Map<string, Tensor>,
  expected: Map<string, Tensor>,
): void {
  const dir = join('cases', String(cases.length));
  // `start` goes in the manifest; every other input is a tensor file.
  const tensors = new Map([...inputs].filter(([n]) => n !== 'start'));
  cases.push({ ...c, inputs: writeTensors(dir, tensors, 'float32'), expected: writeTensors(dir, expected, 'float64') });
}

for (const spec of exampleFiles) {
  for (const s of SIZES) {
    const { module, compiled } = await kernel(spec, s.D, s.K, 'f32');
    const named = toF32(randomInputs(compiled.chunk, { ...s, seed: s.D + s.K }));
    const want = innerLoopOutputTensors(runReference(compiled.chunk, innerLoopInputs(compiled.signature, named)));
    addCase(
      {
        name: `${spec} D=${s.D} K=${s.K} B=${s.B} H=${s.H} T=${s.T} start=${s.start}`,
        module,
        start: s.start,
        tolerance: F32_TOLERANCE,
        decode: true,
      },
      named,
      want,
    );
  }
}

for (const file of REFERENCE_FILES) {
  const ref = await loadReference(file);
  const spec = ref.kind === 'linear' ? 'ttt_linear.ttt' : 'ttt_mlp.ttt';
  const { module } = await kernel(spec, Number(ref.metadata.head_dim), Number(ref.metadata.mini_batch_size), 'f32');
  addCase(
    { name: `${file} (${spec})`, module, start: 0, tolerance: F32_TOLERANCE, decode: false },
    ref.inputs,
    ref.expected,
  );
}

{
  const s = SIZES[1];
  const { module, compiled } = await kernel('ttt_linear.ttt', s.D, s.K, 'bf16');
  const named = toF32(randomInputs(compiled.chunk, { ...s, seed: 7 }));
  const want = innerLoopOutputTensors(runReference(compiled.chunk, innerLoopInputs(compiled.signature, named)));
  addCase(
    {
      name: `ttt_linear.ttt bf16 D=${s.D} K=${s.K} B=${s.B} H=${s.H} T=${s.T} start=${s.start}`,
      module,
      start: s.start,
      tolerance: BF16_TOLERANCE,
      decode: false,
    },
    named,
    want,
  );
}

// bf16 I/O: the views as bf16 (gpu_check.py casts them, exactly: they are rounded here) and a bf16
// output. States keep the f32 tolerance; the output, rounded once to bf16 (unit roundoff 2^-8),
// within 2^-8 + (1 + 2^-8)·tol in norm (tests/support/bf16-io.ts derives it per element). No
// decode check: prefill and decode may round a few elements to neighbouring bf16 values.
for (const spec of ['ttt_linear.ttt', 'ttt_mlp.ttt']) {
  const s = SIZES[1];
  const { module, compiled } = await kernel(spec, s.D, s.K, 'f32', 'bf16');
  const named = toF32(randomInputs(compiled.chunk, { ...s, seed: 9 }));
  const rounded = innerLoopInputs(compiled.signature, named);
  for (const [n, t] of rounded.views) named.set(n, { shape: t.shape, data: t.data.map(roundBf16) });
  const want = innerLoopOutputTensors(runReference(compiled.chunk, innerLoopInputs(compiled.signature, named)));
  addCase(
    {
      name: `${spec} io bf16 D=${s.D} K=${s.K} B=${s.B} H=${s.H} T=${s.T} start=${s.start}`,
      module,
      start: s.start,
      tolerance: F32_TOLERANCE,
      outputTolerance: 2 ** -8 + (1 + 2 ** -8) * F32_TOLERANCE,
      decode: false,
    },
    named,
    want,
  );
}

// Blocks other than 256 threads (compiler/schedule/workgroup-size.ts): fixed at one and two warps,
// and the scheduler's own choice for heads smaller than a block (D = K = 4), so that a GPU checks
// what cuda-cpu emulates of small blocks (a warp's barriers, shuffles and tensor-core fragments).
// TTT-Linear's bf16 warps there take tensor-core tiles in groups of 2, TTT-MLP's at D = K = 16 in
// groups of 4 (compiler/schedule/tensor-core-placement.ts inTileGroups).
const blockSizes = [
  { spec: 'ttt_linear.ttt', D: 32, K: 8, dtype: 'f32', threads: 32 },
  { spec: 'ttt_mlp.ttt', D: 32, K: 8, dtype: 'f32', threads: 64 },
  { spec: 'ttt_linear.ttt', D: 32, K: 8, dtype: 'bf16', threads: 32 },
  { spec: 'ttt_mlp.ttt', D: 16, K: 16, dtype: 'bf16', threads: 32 },
  { spec: 'ttt_linear.ttt', D: 4, K: 4, dtype: 'f32' },
  { spec: 'delta_rule.ttt', D: 4, K: 4, dtype: 'f32' },
] as const;
for (const b of blockSizes) {
  const threads = 'threads' in b ? b.threads : undefined;
  const { module, compiled } = await kernel(b.spec, b.D, b.K, b.dtype, 'f32', threads);
  const s = { B: 2, H: 3, T: 21, start: 2, accum: true };
  const named = toF32(randomInputs(compiled.chunk, { ...s, seed: b.D + (threads ?? 0) }));
  const want = innerLoopOutputTensors(runReference(compiled.chunk, innerLoopInputs(compiled.signature, named)));
  addCase(
    {
      name: `${b.spec} ${b.dtype} ${threads ? `${threads} threads` : 'threads chosen'} D=${b.D} K=${b.K} B=${s.B} H=${s.H} T=${s.T} start=${s.start}`,
      module,
      start: s.start,
      tolerance: b.dtype === 'bf16' ? BF16_TOLERANCE : F32_TOLERANCE,
      decode: b.dtype === 'f32',
    },
    named,
    want,
  );
}

// The smallest TTT-Linear case runs again under compute-sanitizer (memcheck, racecheck, synccheck).
const sanitize = cases.find((c) => c.name.startsWith('ttt_linear.ttt D=32'))!.name;
const header = JSON.stringify({ arch: values.arch, byteOrder: 'little-endian', sanitize }).slice(0, -1);
// One case per line: a readable manifest that is still plain JSON.
writeFileSync(
  join(out, 'manifest.json'),
  `${header},\n"cases": [\n${cases.map((c) => JSON.stringify(c)).join(',\n')}\n]}\n`,
);
console.log(`wrote ${cases.length} cases over ${modules.size} kernels for ${values.arch} to ${out}`);
