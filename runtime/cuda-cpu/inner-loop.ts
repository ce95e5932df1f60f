/**
 * The inner loop on the CPU through the generated CUDA source: the launcher and kernel built as
 * host C++ (build.ts) and run by a driver process on tensors passed through files.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import type { InnerLoopInputs, InnerLoopOutputs } from '../inner-loop.ts';
import { type Built, buildProgram, type CudaCpuMode } from './build.ts';
import type { CudaCpuProgram, CudaTensorField } from './program.ts';
import { bf16Bits, fromBf16Bits } from '../../core/bf16.ts';

const execFileAsync = promisify(execFile);

/** The kernel failed: a launcher status, a runtime error, a deadlock or a sanitizer report. */
export class CudaCpuRunError extends Error {}

/** Sanitizers stop at the first report and say so through the exit status. */
const SANITIZER_ENV = {
  ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86',
  TSAN_OPTIONS: 'halt_on_error=1:exitcode=87:report_signal_unsafe=0',
};

/** The call's input a launcher field holds. */
export function inputOf(t: CudaTensorField, inputs: InnerLoopInputs): Tensor | undefined {
  switch (t.role) {
    case 'view':
      return inputs.views.get(t.name);
    case 'lr':
      return inputs.lr;
    case 'scale':
      return inputs.scale;
    case 'param':
      return inputs.params.get(t.name);
    case 'state':
      return inputs.states.get(t.name);
    case 'accum':
      return inputs.accums.get(t.name);
    case 'token':
      return inputs.tokens?.get(t.name);
    case 'opt':
      return inputs.opts?.get(t.name);
    default:
      return undefined;
  }
}

/** The tensor's shape in a call; `chunks`: how many the call walks, for a tensor with a chunk axis (checkpoints). */
export function shapeOf(t: CudaTensorField, i: InnerLoopInputs, chunks?: number): number[] {
  const lead = t.lead.map((a) => {
    if (a !== 'C') return i[a];
    if (chunks === undefined) throw new Error(`the CPU runtime needs the chunk count for ${t.field}`);
    return chunks;
  });
  return [...lead, ...t.shape];
}

/**
 * Runs a built launcher on the CPU: every tensor it reads from `given`, poisoned outputs, each
 * tensor it writes returned by field, shaped by `shape`.
 */
export async function runDriver(
  program: CudaCpuProgram,
  mode: CudaCpuMode,
  build: Built,
  inputs: InnerLoopInputs,
  shape: (t: CudaTensorField) => number[],
  given: (t: CudaTensorField) => Tensor | undefined,
): Promise<Map<CudaTensorField, Tensor>> {
  const { B, H, T, start } = inputs;
  const chunks: Buffer[] = [Buffer.from('TTCI'), Buffer.from(new Int32Array([B, H, T, start]).buffer)];
  for (const t of program.tensors) {
    const n = size(shape(t));
    chunks.push(Buffer.from(new BigUint64Array([BigInt(n)]).buffer));
    if (t.written) continue;
    const x = given(t);
    if (!x) throw new CudaCpuRunError(`the CUDA launcher takes ${t.role} '${t.name}', which the inputs lack`);
    if (x.data.length !== n)
      throw new CudaCpuRunError(`${t.role} '${t.name}' has ${x.data.length} values, expected ${n}`);
    chunks.push(Buffer.from((t.bf16 ? bf16Bits(x.data) : Float32Array.from(x.data)).buffer));
  }
  const dir = mkdtempSync(join(tmpdir(), 'tttc-cuda-cpu-'));
  try {
    const input = join(dir, 'in.bin');
    const output = join(dir, 'out.bin');
    writeFileSync(input, Buffer.concat(chunks));
    try {
      await execFileAsync(build.executable, [input, output], {
        env: { ...process.env, ...SANITIZER_ENV },
        maxBuffer: 1 << 26,
      });
    } catch (e) {
      const x = e as { stderr?: string; message: string };
      throw new CudaCpuRunError(`${program.source} (${mode}) failed on the CPU:\n${x.stderr || x.message}`);
    }
    // Copied: the typed arrays below need the file's bytes at offsets aligned to their elements.
    const bytes = new Uint8Array(readFileSync(output)).buffer;
    const written = new Map<CudaTensorField, Tensor>();
    let offset = 0;
    for (const t of program.tensors) {
      if (!t.written) continue;
      const s = shape(t);
      const n = size(s);
      const width = t.bf16 ? 2 : 4;
      if (offset + n * width > bytes.byteLength)
        throw new CudaCpuRunError(`the driver wrote ${bytes.byteLength} bytes, too few`);
      const data = t.bf16
        ? fromBf16Bits(new Uint16Array(bytes.slice(offset, offset + n * 2)))
        : Float64Array.from(new Float32Array(bytes.slice(offset, offset + n * 4)));
      written.set(t, { shape: s, data });
      offset += n * width;
    }
    return written;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The call's outputs among the tensors a launcher wrote. */
export function outputsOf(written: ReadonlyMap<CudaTensorField, Tensor>): InnerLoopOutputs {
  const out: InnerLoopOutputs = {
    output: { shape: [], data: new Float64Array() },
    states: new Map(),
    accums: new Map(),
  };
  for (const [t, tensor] of written) {
    if (t.role === 'output') out.output = tensor;
    else if (t.role === 'state_out') out.states.set(t.name, tensor);
    else if (t.role === 'accum_out') out.accums.set(t.name, tensor);
    else if (t.role === 'opt_out') (out.opts ??= new Map()).set(t.name, tensor);
  }
  return out;
}

export class CudaCpuInnerLoop {
  private constructor(
    readonly program: CudaCpuProgram,
    readonly mode: CudaCpuMode,
    readonly build: Built,
  ) {}

  static async create(program: CudaCpuProgram, mode: CudaCpuMode = 'fast'): Promise<CudaCpuInnerLoop> {
    return new CudaCpuInnerLoop(program, mode, await buildProgram(program, mode));
  }

  /** Runs one call; outputs start as NaN (the driver poisons every tensor the kernel writes). */
  async run(inputs: InnerLoopInputs): Promise<InnerLoopOutputs> {
    const shape = (t: CudaTensorField) => shapeOf(t, inputs);
    const given = (t: CudaTensorField) => inputOf(t, inputs);
    return outputsOf(await runDriver(this.program, this.mode, this.build, inputs, shape, given));
  }
}
