/** Reads a reference-vector file into the `run` convention of the example specs. */
import { join } from 'node:path';
import type { Tensor } from '../../core/tensor.ts';
import { readSafetensorsFile, toFloat64 } from '../../runtime/safetensors.ts';
import { referenceDir } from './specs.ts';

export interface ReferenceCase {
  file: string;
  kind: 'linear' | 'mlp';
  metadata: Record<string, string>;
  /** Named inputs for `runInnerLoop`: views, lr, scale, params, initial states. */
  inputs: Map<string, Tensor>;
  /** Expected `output` and `state.*` after the kernel's tokens. */
  expected: Map<string, Tensor>;
  all: Map<string, Tensor>;
}

export const REFERENCE_FILES = [
  'linear_b2_h2_d64_k16_l64.safetensors',
  'mlp_b2_h2_d64_k16_l64.safetensors',
  'linear_gate_b1_h4_d32_k16_l40.safetensors',
];

export async function loadReference(file: string): Promise<ReferenceCase> {
  const f = await readSafetensorsFile(join(referenceDir, file));
  const all = new Map<string, Tensor>([...f.tensors].map(([n, t]) => [n, { shape: t.shape, data: toFloat64(t) }]));
  const get = (n: string) => all.get(n)!;
  const kind = f.metadata.kind as 'linear' | 'mlp';
  const H = Number(f.metadata.heads);
  const D = Number(f.metadata.head_dim);
  const inputs = new Map<string, Tensor>([
    ['q', get('kernel.XQ')],
    ['k', get('kernel.XK')],
    ['v', get('kernel.XV')],
    ['lr', get('kernel.ttt_lr_eta')],
    ['scale', get('kernel.token_eta')],
    ['param.gamma', get('weights.ttt_norm_weight')],
    ['param.beta', get('weights.ttt_norm_bias')],
  ]);
  const expected = new Map<string, Tensor>([['output', get('kernel.output')]]);
  const [B] = get('kernel.XQ').shape;
  const states = kind === 'linear' ? ['W1', 'b1'] : ['W1', 'b1', 'W2', 'b2'];
  for (const s of states) {
    const w = get(`weights.${s}`);
    const isBias = s.startsWith('b');
    inputs.set(`state.${s}`, isBias ? { shape: [H, w.shape[2]], data: w.data } : w);
    const fin = get(`kernel.final.${s}`);
    expected.set(`state.${s}`, isBias ? { shape: [B, H, w.shape[2]], data: fin.data } : fin);
  }
  void D;
  return { file, kind, metadata: f.metadata, inputs, expected, all };
}
