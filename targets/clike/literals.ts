/** Float literals that every C-like target parses as floating point. */
export function floatLiteral(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`constant ${value} cannot be written as a literal`);
  const text = Number.isInteger(value) && Math.abs(value) < 1e15 ? `${value}.0` : String(value);
  return value < 0 || Object.is(value, -0) ? `(${text})` : text;
}
