/**
 * The one catalogue of diagnostic codes. Ranges: TTT1xx syntax, TTT2xx names, TTT3xx dims and
 * shapes, TTT4xx dual form, TTT5xx command line and data, TTT6xx targets, TTT9xx internal errors. `docs/language.md` lists the same table;
 * a test keeps the two in step.
 */
import type { Diagnostic, Span } from './diagnostic.ts';

export interface CodeInfo {
  title: string;
  /** Default hint, used when a diagnostic does not give a more specific one. */
  hint: string;
}

export const CODES = {
  TTT101: { title: 'unexpected character', hint: 'remove the character; `#` starts a comment' },
  TTT102: { title: 'unexpected token', hint: 'see docs/language.md for the grammar' },
  TTT103: { title: 'unexpected end of file', hint: 'the file ends too early; check for a missing `}` or `)`' },
  TTT104: { title: 'text after the layer', hint: 'a file holds exactly one `layer NAME { ... }`' },
  TTT105: {
    title: 'positional argument after a named argument',
    hint: 'put positional arguments first, e.g. `layernorm(x, eps: 1e-5)`',
  },
  TTT106: { title: 'expression nested too deeply', hint: 'split the expression with `let`' },

  TTT201: { title: 'unknown name', hint: 'declare it (state, param, dim, fn, let) or check the spelling' },
  TTT202: { title: 'duplicate declaration', hint: 'every name is declared once; rename one of them' },
  TTT203: { title: 'wrong kind of name', hint: 'only fns and built-ins can be called; only dims can be used as sizes' },
  TTT204: {
    title: 'recursive fn',
    hint: 'fns are inlined, so they cannot call themselves, directly or through other fns',
  },
  TTT205: {
    title: 'missing declaration',
    hint: 'a layer needs a `minibatch`, at least one `state`, a `loss`, an `output` and an `update`',
  },
  TTT206: { title: 'unknown function', hint: 'call a fn declared in the layer or a built-in (see docs/language.md)' },
  TTT207: {
    title: 'unknown or repeated named argument',
    hint: 'only the norms take a named argument, `eps`; fns take none',
  },
  TTT208: { title: 'wrong number of arguments', hint: 'pass as many positional arguments as the function declares' },
  TTT209: {
    title: 'layer reads no per-token input',
    hint: 'give `loss` or `output` at least one view parameter, e.g. `output(q: [D]) = q @ W`',
  },
  TTT210: {
    title: 'spec nested too deeply',
    hint: 'fns calling fns, or lets built on lets, nest too deeply to compile; flatten the chain',
  },

  TTT301: { title: 'dim is not a positive integer', hint: 'sizes are whole numbers of at least 1' },
  TTT302: { title: 'unknown or later dim', hint: 'a dim may use only dims declared above it' },
  TTT303: { title: 'non-integer division', hint: 'a size division must divide exactly' },
  TTT304: { title: 'shape mismatch', hint: '`+ - * /` and `dot` need equal shapes, or one side a scalar' },
  TTT305: { title: 'matmul shape mismatch', hint: '`@` takes [m]@[m,n], [m,n]@[n,p], [m,n]@[n] or [m]@[m]' },
  TTT306: { title: 'override of an unknown dim', hint: '`-D NAME=VALUE` must name a `dim` or the `minibatch`' },
  TTT307: { title: 'rank above 2', hint: 'tensors are scalars, vectors or matrices' },
  TTT308: { title: 'loss is not a scalar', hint: 'reduce it, e.g. `sum(...)` or `mean(...)`' },
  TTT309: {
    title: 'fn return type mismatch',
    hint: 'make the declared return type match the returned expression, or leave it out',
  },
  TTT310: {
    title: 'view declared with different shapes',
    hint: 'a view used by both `loss` and `output` needs the same type in both',
  },
  TTT311: { title: 'wrong rank for a built-in', hint: '`transpose` needs a matrix; the norms need a vector or matrix' },
  TTT312: { title: 'unknown update rule', hint: 'the only rule is `sgd`: `update sgd(lr: token, scale: position)`' },
  TTT313: { title: 'bad learning rate', hint: '`lr` is `token` (a per-token input) or a positive number' },
  TTT314: { title: 'bad scale', hint: '`scale` is `position` (a per-position input), `none` or a positive number' },
  TTT315: { title: 'argument shape mismatch', hint: 'pass an argument of the shape the fn declares' },
  TTT316: { title: 'not an integer expression', hint: 'sizes use whole numbers, dims, `+ - * /` and parentheses only' },
  TTT317: { title: 'bad eps', hint: '`eps` is a positive number literal, e.g. `eps: 1e-5`' },
  TTT318: { title: 'number outside f32', hint: 'kernels compute in f32: write a number of magnitude at most 3.4e38' },
  TTT319: {
    title: 'constant is not a finite f32 value',
    hint: 'this constant subexpression evaluates to NaN, an infinity or beyond f32 (e.g. `log(0)`, `1 / 0`); change it',
  },
  TTT320: {
    title: 'size too large for 32-bit indices',
    hint: 'kernels index tensors with 32-bit integers: keep every size and tensor below 2^31 elements',
  },

  TTT340: {
    title: 'bad exponent',
    hint: 'the exponent of `pow` is a number literal, e.g. `pow(x, 3)` or `pow(x, -0.5)`',
  },

  TTT341: {
    title: 'bad decay or momentum',
    hint: '`decay` is `token` or a number in (0, 1]; `momentum` is `token` or a number in [0, 1)',
  },
  TTT342: { title: 'bad read order', hint: '`read` is `causal` (the default), `before` or `after`' },
  TTT343: {
    title: 'commit transform with causal reading',
    hint: 'a commit transform or `orthogonalize` changes the state only between mini-batches; use `read: before` or `read: after`',
  },
  TTT344: {
    title: 'update statement names no state',
    hint: '`lr`, `commit` and `orthogonalize` in the update block each name a `state`',
  },
  TTT345: {
    title: 'commit transform of the wrong shape',
    hint: 'a commit transform gives the state a new value of the state’s own shape',
  },
  TTT346: {
    title: 'scale with a rule beyond plain sgd',
    hint: 'with decay, momentum, rates per state, a read order or a block, `scale` is `none` (or left out)',
  },
  TTT347: {
    title: 'orthogonalize of a non-matrix state, or with decay or momentum',
    hint: 'Newton–Schulz orthogonalises a matrix’s summed update; drop `decay` and `momentum` to use it',
  },
  TTT348: {
    title: 'unknown update statement',
    hint: 'the update block holds `lr S: RATE`, `commit S = EXPR` and `orthogonalize S(steps: N)`',
  },
  TTT349: { title: 'bad orthogonalize steps', hint: '`steps` is a whole number from 1 to 20, e.g. `steps: 5`' },
  TTT350: {
    title: 'state without a learning rate',
    hint: 'give `lr` in `update sgd(...)` or `lr S: RATE` in the block for every state',
  },

  TTT401: {
    title: 'state has no dual form',
    hint: 'a state has a dual form only as `x @ S`, `z + S` or `z * S`; compile with the primal form instead',
  },
  TTT402: {
    title: 'state used in both matmul and elementwise positions',
    hint: 'use the state either as a matmul operand or elementwise, or compile with the primal form',
  },

  TTT501: { title: 'bad command-line option', hint: 'run `tttc --help` for the options' },
  TTT502: { title: 'bad input data', hint: 'check the shapes and the file format of the inputs' },

  TTT601: {
    title: 'update rule not rendered by a target',
    hint: 'compile with chunks of the whole mini-batch (the default), run it on the f64 reference (`tttc run`) or emit the IR (`--target ir`)',
  },

  TTT901: {
    title: 'internal compiler error',
    hint: 'this is a bug in tttc; please report it with the spec that triggers it',
  },
} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof CODES;

/** An error diagnostic with the catalogue's hint unless a more specific one is given. */
export function diag(code: Code, span: Span, message: string, hint?: string): Diagnostic {
  return { code, severity: 'error', message, span, hint: hint ?? CODES[code].hint };
}
