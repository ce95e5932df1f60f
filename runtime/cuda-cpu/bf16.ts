/** Tensors stored as bf16 (io bf16) as the CPU runtime's driver passes them: raw 16-bit patterns. */
import { roundBf16 } from '../../compiler/ir/execute.ts';

/** Each value rounded to bf16 (to nearest even, as the kernel's stores round) as its 16 bits. */
export function bf16Bits(values: ArrayLike<number>): Uint16Array {
  const rounded = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) rounded[i] = roundBf16(values[i]);
  // A bf16 is the upper half of the f32 it rounds to (on a little-endian host, the odd halves).
  const halves = new Uint16Array(rounded.buffer);
  return Uint16Array.from({ length: values.length }, (_, i) => halves[2 * i + 1]);
}

/** bf16 bits widened (exactly) to numbers. */
export function fromBf16Bits(bits: Uint16Array): Float64Array {
  const words = Uint32Array.from(bits, (b) => b << 16);
  return Float64Array.from(new Float32Array(words.buffer));
}
