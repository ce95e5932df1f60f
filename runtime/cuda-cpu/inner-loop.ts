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

const execFileAsync = promisify(execFile);

/** The kernel failed: a launcher status, a runtime error, a deadlock or a sanitizer report. */
export class CudaCpuRunError extends Error {}

/** Sanitizers stop at the first report and say so through the exit status. */
const SANITIZER_ENV = {
  ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86',
  TSAN_OPTIONS: 'halt_on_error=1:exitcode=87:report_signal_unsafe=0',
};

function inputOf(t: CudaTensorField, inputs: InnerLoopInputs): Tensor | undefined {
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

const shapeOf = (t: CudaTensorField, i: InnerLoopInputs) => [
  ...t.lead.map((a) => {
    if (a === 'C') throw new Error(`the CPU runtime runs no kernel with per-chunk tensors (${t.field})`);
    return i[a];
  }),
  ...t.shape,
];

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
    const { B, H, T, start } = inputs;
    const chunks: Buffer[] = [Buffer.from('TTCI'), Buffer.from(new Int32Array([B, H, T, start]).buffer)];
    for (const t of this.program.tensors) {
      const shape = shapeOf(t, inputs);
      chunks.push(Buffer.from(new BigUint64Array([BigInt(size(shape))]).buffer));
      if (t.written) continue;
      const x = inputOf(t, inputs);
      if (!x) throw new CudaCpuRunError(`the CUDA launcher takes ${t.role} '${t.name}', which the inputs lack`);
      if (x.data.length !== size(shape))
        throw new CudaCpuRunError(`${t.role} '${t.name}' has ${x.data.length} values, expected ${size(shape)}`);
      chunks.push(Buffer.from(Float32Array.from(x.data).buffer));
    }
    const dir = mkdtempSync(join(tmpdir(), 'tttc-cuda-cpu-'));
    try {
      const input = join(dir, 'in.bin');
      const output = join(dir, 'out.bin');
      writeFileSync(input, Buffer.concat(chunks));
      try {
        await execFileAsync(this.build.executable, [input, output], {
          env: { ...process.env, ...SANITIZER_ENV },
          maxBuffer: 1 << 26,
        });
      } catch (e) {
        const x = e as { stderr?: string; message: string };
        throw new CudaCpuRunError(`${this.program.source} (${this.mode}) failed on the CPU:\n${x.stderr || x.message}`);
      }
      const bytes = readFileSync(output);
      const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      return this.unpack(values, inputs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  private unpack(values: Float32Array, inputs: InnerLoopInputs): InnerLoopOutputs {
    let offset = 0;
    const out: InnerLoopOutputs = {
      output: { shape: [], data: new Float64Array() },
      states: new Map(),
      accums: new Map(),
    };
    for (const t of this.program.tensors) {
      if (!t.written) continue;
      const shape = shapeOf(t, inputs);
      const n = size(shape);
      if (offset + n > values.length) throw new CudaCpuRunError(`the driver wrote ${values.length} values, too few`);
      const tensor: Tensor = { shape, data: Float64Array.from(values.subarray(offset, offset + n)) };
      offset += n;
      if (t.role === 'output') out.output = tensor;
      else if (t.role === 'state_out') out.states.set(t.name, tensor);
      else if (t.role === 'accum_out') out.accums.set(t.name, tensor);
      else if (t.role === 'opt_out') (out.opts ??= new Map()).set(t.name, tensor);
    }
    return out;
  }
}
