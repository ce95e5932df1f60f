/** Float literals that every C-like target parses as floating point. */
export function floatLiteral(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`constant ${value} cannot be written as a literal`);
  // JavaScript writes integers below 1e21 without an exponent ("100000000000000000000"), which C
  // and WGSL would read as an integer literal: large ones take the exponent form ("1e+20").
  const text = !Number.isInteger(value) ? String(value) : Math.abs(value) < 1e15 ? `${value}.0` : value.toExponential();
  return value < 0 || Object.is(value, -0) ? `(${text})` : text;
}
