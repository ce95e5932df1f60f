/** `tttc layer`: the whole sequence layer (projections, RoPE, inner loop, post-norm, gate, output projection) over hidden states. */
import { referenceLayer, webgpuLayer } from './link-layer.ts';
import type { Tensor as F64Tensor } from '../core/tensor.ts';
import { CacheError } from '../runtime/layer/cache.ts';
import { LayerConfigError } from '../runtime/layer/config.ts';
import { LayerInputError, type SequenceLayer } from '../runtime/layer/layer.ts';
import { type LayerOptions, layerFromSafeFile, WeightError } from '../runtime/layer/weights.ts';
import { readSafetensorsFile, type Tensor, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import type { Compiled } from '../compiler/pipeline.ts';
import { type ParsedArgs, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';
import { phases } from './progress.ts';
import { checkOutputPath } from '../runtime/safe-write.ts';

const BACKENDS = ['reference', 'webgpu'] as const;
type BackendName = (typeof BACKENDS)[number];

/** Errors about the data rather than the command line: reported as TTT502 with exit code 1. */
const isDataError = (e: unknown) =>
  e instanceof WeightError || e instanceof LayerConfigError || e instanceof LayerInputError || e instanceof CacheError;

async function buildLayer(
  backend: BackendName,
  compiled: Compiled,
  weightsPath: string,
  options: LayerOptions,
): Promise<SequenceLayer> {
  const { config, weights } = layerFromSafeFile(await readSafetensorsFile(weightsPath), compiled.signature, options);
  return backend === 'webgpu' ? webgpuLayer(compiled, config, weights) : referenceLayer(compiled, config, weights);
}

async function readInput(path: string, name: string): Promise<F64Tensor> {
  const t = (await readSafetensorsFile(path)).get(name);
  const floats = ['F64', 'F32', 'F16', 'BF16'];
  if (!floats.includes(t.dtype))
    throw new LayerInputError(`${path}: tensor '${name}' has dtype ${t.dtype}; expected one of ${floats.join(', ')}`);
  return { shape: t.shape, data: Float64Array.from(toFloat64(t)) };
}

export async function layerCommand(a: ParsedArgs, io: CliIO): Promise<number> {
  const need = (name: string, what: string) => {
    const v = a.options.get(name);
    if (!v) throw new UsageError(`missing --${name} ${what}`);
    return v;
  };
  const weightsPath = need('weights', 'W.safetensors');
  const inputPath = need('input', 'X.safetensors');
  const out = need('out', 'Y.safetensors');
  const backend = (a.options.get('backend') ?? 'reference') as BackendName;
  if (!BACKENDS.includes(backend))
    throw new UsageError(`unknown backend '${backend}'; backends: ${BACKENDS.join(', ')}`);
  const baseLrText = a.options.get('base-lr');
  const baseLr = baseLrText === undefined ? undefined : Number(baseLrText);
  if (baseLr !== undefined && (baseLrText!.trim() === '' || !Number.isFinite(baseLr)))
    throw new UsageError(`--base-lr expects a number, got '${baseLrText}'`);
  const compiled = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!compiled) return 1;
  await checkOutputPath(out, [compiled.file, weightsPath, inputPath]);

  const decode = a.flags.has('decode');
  const progress = phases(io, a.flags.has('verbose'));
  let layer: SequenceLayer | undefined;
  try {
    layer = await progress.time(`set-up (${backend}: weights, kernels)`, () =>
      buildLayer(backend, compiled, weightsPath, { prefix: a.options.get('prefix'), baseLr }),
    );
    const x = await progress.time('read input', () =>
      readInput(inputPath, a.options.get('input-name') ?? 'hidden_states'),
    );
    const started = performance.now();
    const { output } = decode ? await layer.decode(x) : await layer.forward(x);
    const ms = performance.now() - started;
    const t = layer.lastTimings;
    progress.report(
      `${decode ? 'decode' : 'prefill'} ${ms.toFixed(1)} ms (last call: projections ${t.project.toFixed(1)} ms, inner loop ${t.innerLoop.toFixed(1)} ms, norm and output ${t.finish.toFixed(1)} ms)`,
    );
    const shape = [...output.shape];
    // The f32 backend's results are written as F32: F64 would claim digits it does not have.
    const tensor: Tensor =
      backend === 'webgpu'
        ? { dtype: 'F32', shape, data: Float32Array.from(output.data) }
        : { dtype: 'F64', shape, data: output.data };
    await progress.time('write', () =>
      writeSafetensorsFile(
        out,
        { output: tensor },
        { backend, spec: compiled.file, mode: decode ? 'decode' : 'prefill' },
        { inputs: [compiled.file, weightsPath, inputPath] },
      ),
    );
    const [B, T] = x.shape;
    io.out(
      `${compiled.layer.name} layer: ${B}×${T} tokens (${decode ? 'decode, token by token' : 'prefill'}) on ${backend} in ${ms.toFixed(1)} ms; wrote ${out}`,
    );
    return 0;
  } catch (e) {
    if (!isDataError(e)) throw e;
    io.err(`error TTT502: ${(e as Error).message}`);
    return 1;
  } finally {
    layer?.destroy();
  }
}
