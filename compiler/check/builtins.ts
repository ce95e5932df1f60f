/** The built-in functions' signatures: arity, named arguments, shape rule. Their lowering is `ir/builtins.ts`. */

/**
 * reduce: any tensor -> scalar (sum, mean). elementwise: same shape. normalise: same shape,
 * normalised over the last axis, so rank >= 1. dot: two equal shapes -> scalar. transpose: [m,n] -> [n,m].
 * broadcast: elementwise over its arguments broadcast together like `+` (min, max, clamp).
 * power: same shape, the exponent a constant. outer: [m], [n] -> [m, n].
 * concat: [..., m], [..., n] -> [..., m + n], the leading axes equal.
 */
type BuiltinKind =
  'reduce' | 'elementwise' | 'normalise' | 'dot' | 'transpose' | 'broadcast' | 'power' | 'outer' | 'concat';

export interface Builtin {
  kind: BuiltinKind;
  arity: number;
  /** Named arguments it accepts (each a positive number literal). */
  named: readonly string[];
}

const elementwise: Builtin = { kind: 'elementwise', arity: 1, named: [] };
const normalise: Builtin = { kind: 'normalise', arity: 1, named: ['eps'] };

export const BUILTINS: ReadonlyMap<string, Builtin> = new Map<string, Builtin>([
  ['sum', { kind: 'reduce', arity: 1, named: [] }],
  ['mean', { kind: 'reduce', arity: 1, named: [] }],
  ...['square', 'sqrt', 'rsqrt', 'exp', 'log', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'gelu_tanh', 'abs'].map(
    (name): [string, Builtin] => [name, elementwise],
  ),
  ...['layernorm', 'rmsnorm', 'l2norm'].map((name): [string, Builtin] => [name, normalise]),
  ['dot', { kind: 'dot', arity: 2, named: [] }],
  ['transpose', { kind: 'transpose', arity: 1, named: [] }],
  ['min', { kind: 'broadcast', arity: 2, named: [] }],
  ['max', { kind: 'broadcast', arity: 2, named: [] }],
  ['clamp', { kind: 'broadcast', arity: 3, named: [] }],
  ['pow', { kind: 'power', arity: 2, named: [] }],
  ['outer', { kind: 'outer', arity: 2, named: [] }],
  ['concat', { kind: 'concat', arity: 2, named: [] }],
]);
