/**
 * The TTT-Linear sequence layer on the published reference weights: a prefill, then decode steps
 * continuing from its cache, on the f64 reference and on WebGPU, each checked against the
 * PyTorch layer's output.
 *
 *   npx tsx examples/layer_demo.ts
 */
import { loadReferenceLayerOf, loadWebGPULayerOf } from '../cli/link-layer.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import type { SequenceLayer } from '../runtime/layer/layer.ts';
import { readSafetensorsFile, toFloat64 } from '../runtime/safetensors.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';

const weightsPath = fileURLToPath(
  new URL('../tests/fixtures/ttt-reference/linear_b2_h2_d64_k16_l64.safetensors', import.meta.url),
);
const specPath = fileURLToPath(new URL('./ttt_linear.ttt', import.meta.url));
const PREFILL = 40; // not a multiple of K = 16: decode starts in the middle of a mini-batch
const DECODE = 8;

/** Tokens [from, to) of t [B, T, C]. */
function tokens(t: Tensor, from: number, to: number): Tensor {
  const [B, T, C] = t.shape;
  const data = new Float64Array(B * (to - from) * C);
  for (let b = 0; b < B; b++) data.set(t.data.subarray((b * T + from) * C, (b * T + to) * C), b * (to - from) * C);
  return { shape: [B, to - from, C], data };
}

async function demo(name: string, load: () => Promise<SequenceLayer>, x: Tensor, want: Tensor): Promise<void> {
  let t0 = performance.now();
  const layer = await load();
  console.log(`\n${name} (set-up ${(performance.now() - t0).toFixed(0)} ms)`);
  t0 = performance.now();
  const { output, cache } = await layer.forward(tokens(x, 0, PREFILL));
  const prefillMs = performance.now() - t0;
  console.log(
    `  prefill ${PREFILL} tokens: ${prefillMs.toFixed(1)} ms, rel. error against output.layer ${relativeError(output.data, tokens(want, 0, PREFILL).data).toExponential(2)}`,
  );
  const [B, , C] = x.shape;
  const decoded = new Float64Array(B * DECODE * C);
  t0 = performance.now();
  for (let i = 0; i < DECODE; i++) {
    const y = await layer.step(tokens(x, PREFILL + i, PREFILL + i + 1), cache);
    for (let b = 0; b < B; b++) decoded.set(y.data.subarray(b * C, (b + 1) * C), (b * DECODE + i) * C);
  }
  const stepMs = (performance.now() - t0) / DECODE;
  const error = relativeError(decoded, tokens(want, PREFILL, PREFILL + DECODE).data);
  console.log(
    `  decode ${DECODE} tokens: ${stepMs.toFixed(1)} ms per token, rel. error ${error.toExponential(2)}; cache at token ${cache.position}`,
  );
  layer.destroy();
}

const text = readFileSync(specPath, 'utf8');
const result = compileSpec(text, { file: specPath });
if (!result.ok) throw new Error(formatDiagnostics(result.diagnostics, text));
const file = await readSafetensorsFile(weightsPath);
const get = (n: string): Tensor => ({ shape: file.get(n).shape, data: toFloat64(file.get(n)) });
const x = get('input.hidden_states');
const want = get('output.layer');
console.log(
  `TTT-Linear, ${file.metadata.heads} heads of ${file.metadata.head_dim}, width ${file.metadata.width}, ${x.shape[0]} sequences`,
);

await demo('f64 reference', () => loadReferenceLayerOf(result.compiled, weightsPath, { prefix: 'weights.' }), x, want);
const { adapterName } = await getGPUDevice();
await demo(
  `WebGPU, f32 (${adapterName})`,
  () => loadWebGPULayerOf(result.compiled, weightsPath, { prefix: 'weights.' }),
  x,
  want,
);
