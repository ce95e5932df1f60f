/** WGSL's spelling of the C-like kernel constructs. */
import type { UnaryFn } from '../../compiler/ir/ir.ts';
import type { Dialect } from '../clike/dialect.ts';
import { floatLiteral } from '../clike/literals.ts';

/** `tanh` of a large argument overflows inside some implementations; it is ±1 in f32 well before 15. */
const TANH_LIMIT = 15;

export const wgsl: Dialect = {
  indexType: 'u32',
  floatType: 'f32',
  float: floatLiteral,
  unary(fn: UnaryFn, x: string): string {
    switch (fn) {
      case 'neg':
        return `(-${x})`;
      case 'recip':
        return `(1.0 / ${x})`;
      case 'step':
        return `select(0.0, 1.0, ${x} > 0.0)`;
      case 'erf':
        return `tttc_erf(${x})`;
      case 'tanh':
        return `tanh(clamp(${x}, -${TANH_LIMIT}.0, ${TANH_LIMIT}.0))`;
      default:
        return `${fn}(${x})`;
    }
  },
  select: (c, t, f) => `select(${f}, ${t}, ${c})`,
  constant: (name, type, value) => `let ${name}: ${type} = ${value};`,
  variable: (name, type, value) => `var ${name}: ${type} = ${value};`,
  loop: (name, from, to, step = '1') =>
    `for (var ${name}: u32 = ${from}; ${name} < ${to}; ${name} = ${name} + ${step})`,
  min: (a, b) => `min(${a}, ${b})`,
  // Groups of lanes are aligned blocks of one subgroup (checked by the kernel's prologue, entry.ts).
  shuffleXor: (x, mask) => `subgroupShuffleXor(${x}, ${mask}u)`,
  barrier: (storage) => (storage ? 'storageBarrier();\nworkgroupBarrier();' : 'workgroupBarrier();'),
};

/** erf for f32 (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7). */
export const WGSL_ERF = `fn tttc_erf(x: f32) -> f32 {
  let a = abs(x);
  let t = 1.0 / (1.0 + 0.3275911 * a);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - poly * exp(-a * a));
}`;
