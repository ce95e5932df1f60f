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

export const LAYER_USAGE = `tttc layer FILE --weights W.safetensors --input X.safetensors --out Y.safetensors [options]

  --weights FILE     the layer's weights under the PyTorch names (q_proj.weight, ..., W1, b1);
                     sizes from its __metadata__ (heads, width, ttt_base_lr, use_gate, rope_theta)
                     or its shapes
  --prefix P         prefix of every weight name, e.g. weights.
  --input FILE       hidden_states [B, T, C]
  --input-name NAME  the input tensor's name (default hidden_states)
  --out FILE         writes output [B, T, C]
  --decode           run the tokens one at a time through the decode cache (default: one prefill)
  --backend NAME     reference (f64 on the CPU, default) or webgpu (f32)
  --base-lr R        the inner learning rate's base, when the weights' metadata has no ttt_base_lr`;

export const LAYER_VALUED = ['form', 'weights', 'prefix', 'input', 'input-name', 'out', 'backend', 'base-lr'];
export const LAYER_FLAGS = ['decode'];

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
  if (!['F64', 'F32', 'F16', 'BF16'].includes(t.dtype))
    throw new LayerInputError(`${path}: tensor '${name}' has dtype ${t.dtype}; expected a float dtype`);
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
  if (baseLr !== undefined && !Number.isFinite(baseLr))
    throw new UsageError(`--base-lr expects a number, got '${baseLrText}'`);
  const compiled = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!compiled) return 1;

  const decode = a.flags.has('decode');
  let layer: SequenceLayer | undefined;
  try {
    layer = await buildLayer(backend, compiled, weightsPath, { prefix: a.options.get('prefix'), baseLr });
    const x = await readInput(inputPath, a.options.get('input-name') ?? 'hidden_states');
    const started = performance.now();
    const { output } = decode ? await layer.decode(x) : await layer.forward(x);
    const ms = performance.now() - started;
    const shape = [...output.shape];
    // The f32 backend's results are written as F32: F64 would claim digits it does not have.
    const tensor: Tensor =
      backend === 'webgpu'
        ? { dtype: 'F32', shape, data: Float32Array.from(output.data) }
        : { dtype: 'F64', shape, data: output.data };
    await writeSafetensorsFile(
      out,
      { output: tensor },
      { backend, spec: compiled.file, mode: decode ? 'decode' : 'prefill' },
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
