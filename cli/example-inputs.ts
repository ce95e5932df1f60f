/**
 * `tttc example-inputs`: random, reproducible files for any spec, so `tttc run` and `tttc layer`
 * can be tried without a trained model: the inner loop's inputs, and optionally a whole layer's
 * weights and hidden states.
 */
import { normal, rng } from '../core/random.ts';
import { resolveLayerConfig } from '../runtime/layer/config.ts';
import { weightSpecs } from '../runtime/layer/weights.ts';
import type { Tensor } from '../runtime/safetensors.ts';
import { writeSafetensorsFile } from '../runtime/safetensors.ts';
import { runKey } from '../core/mangle.ts';
import { type KernelSignature, outputPort, paramPorts, statePorts, viewPorts } from '../core/signature.ts';
import { type ParsedArgs, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';

/** Normal samples of a standard deviation, seeded: the same seed gives the same files everywhere. */
function normals(seed: number): (n: number, std: number) => Float32Array {
  const rand = rng(seed);
  return (n, std) => Float32Array.from({ length: n }, () => normal(rand, std));
}

const count = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);
const f32 = (shape: number[], data: Float32Array): Tensor => ({ dtype: 'F32', shape, data });

function positiveInt(a: ParsedArgs, name: string, fallback: number): number {
  const text = a.options.get(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < (name === 'seed' ? 0 : 1))
    throw new UsageError(`--${name} expects a ${name === 'seed' ? 'whole number' : 'positive integer'}, got '${text}'`);
  return value;
}

/** What `tttc run --inputs` reads: views [B, H, T, ...], lr [B, H, T], scale [K], params, states. */
function innerLoopInputs(sig: KernelSignature, B: number, H: number, T: number, random: ReturnType<typeof normals>) {
  const out: Record<string, Tensor> = {};
  for (const v of viewPorts(sig)) out[runKey(v)] = f32([B, H, T, ...v.shape], random(B * H * T * count(v.shape), 1));
  if (sig.lr.kind === 'token')
    out.lr = f32(
      [B, H, T],
      Float32Array.from(random(B * H * T, 1), (x) => 0.1 / (1 + Math.exp(-x))),
    );
  if (sig.scale.kind === 'position')
    out.scale = f32(
      [sig.K],
      Float32Array.from({ length: sig.K }, (_, i) => 1 / (i + 1)),
    );
  for (const p of paramPorts(sig)) out[runKey(p)] = f32([H, ...p.shape], random(H * count(p.shape), 0.5));
  for (const s of statePorts(sig)) {
    const std = 1 / Math.sqrt(s.shape.length === 2 ? s.shape[0] : 4);
    out[runKey(s)] = f32([B, H, ...s.shape], random(B * H * count(s.shape), std));
  }
  return out;
}

/** A whole layer's weights under the PyTorch names, with the metadata `tttc layer` reads its sizes from. */
function layerWeights(sig: KernelSignature, H: number, random: ReturnType<typeof normals>) {
  const config = resolveLayerConfig(sig, { heads: H, baseLr: 1 });
  const out: Record<string, Tensor> = {};
  for (const w of weightSpecs(sig, config)) {
    const shape = w.shapes[0];
    const n = count(shape);
    // Norm weights start at one and biases at zero, as nn.LayerNorm's do; matrices scale by fan-in.
    const data = w.name.endsWith('norm.weight')
      ? new Float32Array(n).fill(1)
      : w.name.endsWith('bias') && !w.role
        ? new Float32Array(n)
        : random(n, 1 / Math.sqrt(shape[shape.length - 1]));
    out[w.name] = f32(shape, data);
  }
  const metadata = {
    heads: String(config.heads),
    width: String(config.width),
    head_dim: String(config.headDim),
    mini_batch_size: String(config.miniBatch),
    ttt_base_lr: String(config.baseLr),
    use_gate: config.useGate ? 'True' : 'False',
    rope_theta: String(config.ropeTheta),
  };
  return { weights: out, metadata, width: config.width };
}

export async function exampleInputsCommand(a: ParsedArgs, io: CliIO): Promise<number> {
  const out = a.options.get('out');
  if (!out) throw new UsageError('missing --out IN.safetensors');
  const B = positiveInt(a, 'batch', 1);
  const H = positiveInt(a, 'heads', 2);
  const seed = positiveInt(a, 'seed', 1);
  const weightsPath = a.options.get('weights');
  const hiddenPath = a.options.get('hidden');
  const cotangentsPath = a.options.get('cotangents');
  if (hiddenPath && !weightsPath) throw new UsageError('--hidden needs --weights: hidden states are for a whole layer');
  const compiled = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!compiled) return 1;
  const sig = compiled.signature;
  const T = positiveInt(a, 'tokens', 2 * sig.K);
  const random = normals(seed);
  const spec = [compiled.file];

  await writeSafetensorsFile(out, innerLoopInputs(sig, B, H, T, random), { seed: String(seed) }, { inputs: spec });
  io.out(`wrote ${out}: inputs of ${B}×${H} sequences of ${T} tokens for ${sig.layer}`);
  if (cotangentsPath) {
    // The cotangent of the output alone: what `tttc run --cotangents` needs at least.
    const output = outputPort(sig);
    const shape = [B, H, T, ...output.shape];
    const cotangents = { [runKey(output)]: f32(shape, random(count(shape), 1)) };
    await writeSafetensorsFile(cotangentsPath, cotangents, { seed: String(seed) }, { inputs: [...spec, out] });
    io.out(`wrote ${cotangentsPath}: the cotangent of ${runKey(output)} [${shape.join(', ')}]`);
  }
  if (weightsPath) {
    const { weights, metadata, width } = layerWeights(sig, H, random);
    await writeSafetensorsFile(weightsPath, weights, metadata, { inputs: [...spec, out] });
    io.out(`wrote ${weightsPath}: weights of a ${H}-head layer of width ${width}`);
    if (hiddenPath) {
      const hidden = { hidden_states: f32([B, T, width], random(B * T * width, 1)) };
      await writeSafetensorsFile(hiddenPath, hidden, undefined, { inputs: [...spec, out, weightsPath] });
      io.out(`wrote ${hiddenPath}: hidden_states [${B}, ${T}, ${width}]`);
    }
  }
  return 0;
}
