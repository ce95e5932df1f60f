/** `tttc run`: the inner loop over a safetensors file of inputs, on a chosen backend; with cotangents, its gradients too. */
import type { Tensor } from '../core/tensor.ts';
import {
  gradientTensors,
  InputError,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { namedF64, toSafeTensors } from '../runtime/named-tensors.ts';
import { checkOutputPath } from '../runtime/safe-write.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { type ParsedArgs, threadsOption, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';
import { BACKENDS } from './backends.ts';
import { DEFAULT_ARCH } from '../api/options.ts';
import { MATMUL_PRECISION_CHOICES, MATMUL_PRECISIONS, type MatmulPrecision } from '../targets/target.ts';
import { phases } from './progress.ts';

export async function runCommand(a: ParsedArgs, io: CliIO): Promise<number> {
  const inputs = a.options.get('inputs');
  const out = a.options.get('out');
  const cotangentsFile = a.options.get('cotangents');
  if (!inputs) throw new UsageError('missing --inputs IN.safetensors');
  if (!out) throw new UsageError('missing --out OUT.safetensors');
  const backendName = a.options.get('backend') ?? 'reference';
  const backend = BACKENDS.get(backendName);
  if (!backend) throw new UsageError(`unknown backend '${backendName}'; backends: ${[...BACKENDS.keys()].join(', ')}`);
  const codeOptions = ['arch', 'dtype', 'io', 'threads'].filter((o) => a.options.has(o));
  if (codeOptions.length > 0 && !backend.runsGeneratedCuda)
    throw new UsageError(
      `${codeOptions.map((o) => `--${o}`).join(', ')} choose the generated CUDA that --backend cuda-cpu runs; the ${backendName} backend runs none`,
    );
  const dtype = (a.options.get('dtype') ?? 'f32') as MatmulPrecision;
  if (!MATMUL_PRECISIONS.includes(dtype))
    throw new UsageError(`--dtype must be ${MATMUL_PRECISION_CHOICES}, got '${dtype}'`);
  const ioOption = a.options.get('io') ?? 'f32';
  if (ioOption !== 'f32' && ioOption !== 'bf16') throw new UsageError(`--io must be f32 or bf16, got '${ioOption}'`);
  const arch = a.options.get('arch') ?? DEFAULT_ARCH;
  const threads = threadsOption(a);
  if (!/^sm_\d+a?$/.test(arch)) throw new UsageError(`--arch must look like sm_80 or sm_90, got '${arch}'`);
  const c = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!c) return 1;
  // Refused before the work rather than after it.
  const readFrom = cotangentsFile ? [c.file, inputs, cotangentsFile] : [c.file, inputs];
  await checkOutputPath(out, readFrom);
  const progress = phases(io, a.flags.has('verbose'));
  let file = inputs;
  let named, namedInputs, cotangents;
  try {
    namedInputs = namedF64(await progress.time('read inputs', () => readSafetensorsFile(inputs)));
    named = innerLoopInputs(c.signature, namedInputs);
    if (cotangentsFile) {
      file = cotangentsFile;
      const read = namedF64(await progress.time('read cotangents', () => readSafetensorsFile(cotangentsFile)));
      cotangents = innerLoopCotangents(c.signature, named, read);
    }
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`error TTT502: ${file}: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const started = performance.now();
  let tensors: Map<string, Tensor>;
  if (cotangents) {
    const { outputs, grads } = await progress.time(`set-up, run and backward (${backendName})`, () =>
      backend.backward!(c, named, cotangents, { arch, dtype, io: ioOption, threads }),
    );
    tensors = new Map([...innerLoopOutputTensors(outputs), ...gradientTensors(grads, namedInputs)]);
  } else {
    const onPhase = (name: string, ms: number) => progress.report(`  ${name}: ${ms.toFixed(1)} ms`);
    const result = await progress.time(`set-up and run (${backendName})`, () =>
      backend.run(c, named, { arch, dtype, io: ioOption, threads, onPhase }),
    );
    tensors = innerLoopOutputTensors(result);
  }
  const ms = performance.now() - started;
  await progress.time('write', () =>
    writeSafetensorsFile(
      out,
      toSafeTensors(tensors, backend.dtype),
      { backend: backendName, spec: c.file },
      { inputs: readFrom },
    ),
  );
  io.out(
    `${c.layer.name}: ${named.B}×${named.H} sequences of ${named.T} tokens on ${backendName}${cotangents ? ' with gradients' : ''} in ${ms.toFixed(1)} ms; wrote ${out}`,
  );
  return 0;
}
