/** Conversions between safetensors files and the f64 named tensors the inner loop works on. */
import type { Tensor as F64Tensor } from '../core/tensor.ts';
import { type SafeFile, type Tensor, toFloat64 } from './safetensors.ts';

const FLOAT = new Set(['F64', 'F32', 'F16', 'BF16', 'I64', 'I32']);

export function namedF64(file: SafeFile): Map<string, F64Tensor> {
  const out = new Map<string, F64Tensor>();
  for (const [name, t] of file.tensors) {
    if (!FLOAT.has(t.dtype))
      throw new Error(`${file.name}: tensor '${name}' has dtype ${t.dtype}; expected one of ${[...FLOAT].join(', ')}`);
    out.set(name, { shape: t.shape, data: toFloat64(t) });
  }
  return out;
}

export function toSafeTensors(named: ReadonlyMap<string, F64Tensor>, dtype: 'F64' | 'F32'): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of named) {
    out.set(
      name,
      dtype === 'F64'
        ? { dtype, shape: [...t.shape], data: t.data }
        : { dtype, shape: [...t.shape], data: Float32Array.from(t.data) },
    );
  }
  return out;
}
