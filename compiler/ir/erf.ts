/** erf in f64 to about 1e-15: Taylor series near zero, Lentz's continued fraction for erfc beyond. */
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

export function erf(x: number): number {
  if (Number.isNaN(x)) return x;
  const a = Math.abs(x);
  if (a < 2) {
    let term = a;
    let total = a;
    for (let n = 1; n < 60; n++) {
      term *= (-a * a) / n;
      const add = term / (2 * n + 1);
      total += add;
      if (Math.abs(add) < 1e-17 * Math.abs(total)) break;
    }
    return Math.sign(x) * TWO_OVER_SQRT_PI * total;
  }
  if (a > 6) return Math.sign(x);
  // erfc(a) = exp(-a²)/√π · 1/(a + 1/2/(a + 1/(a + 3/2/(a + ...)))), evaluated by modified Lentz.
  const tiny = 1e-300;
  let f = a;
  let c = a;
  let d = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    d = a + an * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = a + an / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}
