/**
 * bfloat16: f32's upper 16 bits (8 significant bits). Rounding as the kernels round (to nearest
 * even), and the 16-bit patterns that tensors stored as bf16 (io bf16) hold.
 */

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);

/** `x` rounded to f32 and then to bfloat16 (8 significant bits), to nearest even. */
export function roundBf16(x: number): number {
  asFloat[0] = x;
  if (!Number.isFinite(asFloat[0])) return asFloat[0];
  const b = bits[0];
  bits[0] = (b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000;
  return asFloat[0];
}

/** Each value rounded to bf16 (to nearest even, as the kernel's stores round) as its 16 bits. */
export function bf16Bits(values: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    asFloat[0] = roundBf16(values[i]);
    out[i] = bits[0] >>> 16;
  }
  return out;
}

/** bf16 bits widened (exactly) to numbers. */
export function fromBf16Bits(bits: Uint16Array): Float64Array {
  const words = Uint32Array.from(bits, (b) => b << 16);
  return Float64Array.from(new Float32Array(words.buffer));
}
