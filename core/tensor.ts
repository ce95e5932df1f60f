/** A dense row-major f64 tensor: the values the reference executor works on. */
import type { Shape } from './shape.ts';

export interface Tensor {
  shape: Shape;
  data: Float64Array;
}

/** What public entry points accept: f64 values, or f32 as the kernels compute in. */
export interface TensorInput {
  shape: Shape;
  data: Float64Array | Float32Array;
}

/** The tensor as f64: itself when it is f64 already, else a widened copy. */
export function asF64(t: TensorInput): Tensor {
  return t.data instanceof Float64Array ? (t as Tensor) : { shape: t.shape, data: Float64Array.from(t.data) };
}

export function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

/** ‖a − b‖ / ‖b‖ (or ‖a − b‖ when b is zero). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relative error of ${a.length} values against ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (Number.isNaN(num)) return Number.NaN;
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
