/**
 * The kernel IR: one workgroup's program, below the tensor IR and above the printers. Scheduling
 * decides what it contains (compiler/kernel/lower.ts); targets/clike/print.ts spells it in WGSL or
 * CUDA. Buffers are named by what they are (a port of the kernel signature, on-chip memory, the
 * workgroup's slice of scratch); index expressions are built by the folding constructors of
 * affine.ts; dims are named constants. Plain data, so passes can read and rewrite it.
 */
import type { UnaryFn } from '../ir/ir.ts';
import type { Port } from '../../core/signature.ts';
import type { MmaOperands } from '../schedule/kernel.ts';

/** The scalar types a kernel names: indices (unsigned), floats (f32) and conditions. */
export type Type = 'index' | 'float' | 'bool';

/** Values of the call every invocation reads: its shape (`T`, `H`), its position, packed sizes. */
export type Uniform = 'T' | 'H' | 'start' | 'BH' | 'BHT';

/** Memory a kernel reads and writes. */
export type Buffer =
  /** A global tensor of the kernel signature; the index is the flat element of the whole port (lead axes included). */
  | { kind: 'port'; port: Port }
  /** On-chip memory shared by the workgroup (WebGPU workgroup storage, CUDA shared memory). */
  | { kind: 'workgroup' }
  /** Global scratch: the index is into the whole buffer (every workgroup's slice). */
  | { kind: 'scratch' };

/** `^` is the bitwise XOR of a swizzled on-chip layout (compiler/kernel/banks.ts). */
export type IndexOp = '+' | '-' | '*' | '/' | '%' | '^';
export type FloatOp = '+' | '-' | '*' | '/';
export type CompareOp = '<' | '<=' | '==' | '!=';

export type Expr =
  | { kind: 'int'; value: number }
  | { kind: 'float'; value: number }
  /** A declared value, a loop counter, or one of the kernel's own values (`bh`, `tid`). */
  | { kind: 'name'; name: string }
  /** A named compile-time constant (the spec's dims, the mini-batch, rows per chunk). */
  | { kind: 'dim'; name: string; value: number }
  | { kind: 'uniform'; name: Uniform }
  | { kind: 'load'; buffer: Buffer; index: Expr }
  /** Unsigned index arithmetic; build it with affine.ts, which folds constants. */
  | { kind: 'index'; op: IndexOp; a: Expr; b: Expr }
  | { kind: 'min'; a: Expr; b: Expr }
  | { kind: 'float-op'; op: FloatOp; a: Expr; b: Expr }
  | { kind: 'unary'; fn: UnaryFn; x: Expr }
  | { kind: 'compare'; op: CompareOp; a: Expr; b: Expr }
  | { kind: 'or'; a: Expr; b: Expr }
  | { kind: 'select'; condition: Expr; ifTrue: Expr; ifFalse: Expr }
  /** A matmul operand as the product reads it (a dialect may round it, e.g. to bf16). */
  | { kind: 'operand'; x: Expr }
  /** Warp/subgroup exchange: `x` of the lane whose index is this lane's XOR `mask`. */
  | { kind: 'shuffle-xor'; x: Expr; mask: number; width: number }
  /** This lane's element `element` (0 to 3) of an accumulator fragment (see FragmentRole). */
  | { kind: 'fragment-element'; fragment: string; element: Expr }
  /** Whether a global buffer's first element lies at a multiple of `bytes` (known only at run time). */
  | { kind: 'aligned'; buffer: Buffer; bytes: number }
  /**
   * The bf16 at bf16 element `index` of on-chip memory, widened to f32 (exactly): rows an
   * `async-copy` landed as a port stored as bf16 holds them.
   */
  | { kind: 'load-bf16'; index: Expr }
  | OnChipElement;

/**
 * Where element (row, col) of an on-chip buffer lies relative to the buffer's start: `flat`
 * row-major, or `rowStart + (col ^ (row % width) * step)` when swizzled. The lowering writes every
 * on-chip index with one; compiler/kernel/banks.ts then chooses each buffer's layout from all its
 * accesses and sets `laidOut`, which is what the element is from then on (printers print it).
 */
export interface OnChipElement {
  kind: 'on-chip-element';
  /** Names the buffer: all its elements get the same layout. */
  buffer: string;
  /** Floats the buffer holds: a buffer of at most 32 has no bank conflicts to remove. */
  size: number;
  /** Columns per row: a swizzle width divides it, so a swizzled column stays in its row. */
  columns: number;
  flat: Expr;
  rowStart: Expr;
  row: Expr;
  col: Expr;
  laidOut?: Expr;
}

/**
 * A warp's share of one tensor-core product (mma m16n8k16 on bf16, or m16n8k8 on tf32; f32
 * accumulation): `a` a 16xk operand tile, `b` a kx8 one, `c` the 16x8 f32 accumulator, each four,
 * two and four 32-bit registers; which lane holds what is the target's fragment layout
 * (targets/cuda/mma.ts).
 */
export type FragmentRole = 'a' | 'b' | 'c';

export type Stmt =
  /** A comment line; the printer escapes it (it may quote the spec). */
  | { kind: 'comment'; text: string }
  | { kind: 'blank' }
  | { kind: 'let'; name: string; type: Type; value: Expr; mutable: boolean }
  | { kind: 'assign'; name: string; value: Expr }
  | { kind: 'store'; buffer: Buffer; index: Expr; value: Expr }
  /**
   * `for (counter = from; counter < to; counter += step)`; a loop over invocations starts at `tid`
   * and steps by their count. `rolled`: the target should not unroll it (a loop reading global
   * memory every iteration, whose unrolled loads a compiler would hold in registers all at once).
   */
  | { kind: 'for'; counter: string; from: Expr; to: Expr; step: Expr; body: Stmt[]; rolled?: boolean }
  | { kind: 'while'; condition: Expr; body: Stmt[] }
  | { kind: 'if'; condition: Expr; body: Stmt[] }
  /** A scope of its own: its declarations end with it. */
  | { kind: 'block'; body: Stmt[] }
  /** Every invocation waits for the others; `storage` when global memory written before is read after. */
  | { kind: 'barrier'; storage: boolean }
  /** The lanes of each warp wait for each other (on-chip memory one wrote is read by another). */
  | { kind: 'warp-barrier' }
  /** Declares a fragment of this lane; an accumulator starts at zero. */
  | { kind: 'fragment'; name: string; role: FragmentRole }
  /** Stores `value` rounded to bf16 in on-chip memory; `index` counts bf16 elements from its start. */
  | { kind: 'store-bf16'; index: Expr; value: Expr }
  /**
   * Warp-collective: loads operand fragment `fragment` from 16-byte rows in on-chip memory
   * (ldmatrix), this lane naming the row that starts at element `index` (16-byte aligned), counted
   * in elements of `elementBytes` (bf16 or f32 staging) from on-chip memory's start; `transpose`
   * when the rows run along the product's contraction for `a` but across it for `b`.
   */
  | { kind: 'load-fragment'; fragment: string; role: 'a' | 'b'; index: Expr; elementBytes: 2 | 4; transpose: boolean }
  /**
   * Sets b32 register `register` of operand fragment `fragment` from the elements the fragment's
   * layout gives this lane there (tttc_mma.cuh): two values rounded to bf16 and packed, the first in
   * the low half, or one f32 as it is (tf32x3 splits it in the mma).
   */
  | { kind: 'pack-fragment'; fragment: string; register: number; values: Expr[] }
  /** Warp-collective: `c += a b` on tensor cores, the fragments holding `operands` (tf32x3: f32, split into three mma). */
  | { kind: 'mma'; c: string; a: string; b: string; operands: MmaOperands }
  /**
   * Starts copying ASYNC_COPY_BYTES bytes from global `source` at element `sourceIndex` (an element
   * as global memory holds the port: a float, or a bf16 for a port stored as bf16) to on-chip float
   * element `index`, both 16-byte aligned; the bytes land as they are (4 floats, or 8 bf16 that
   * `load-bf16` reads). Nothing may read the copy before an `async-wait` that covers its group,
   * followed by a barrier for the other invocations.
   */
  | { kind: 'async-copy'; index: Expr; source: Buffer; sourceIndex: Expr }
  /** Closes the group of this invocation's async copies started since the last commit. */
  | { kind: 'async-commit' }
  /** Waits until at most `pending` of this invocation's committed groups are still in flight. */
  | { kind: 'async-wait'; pending: number };

/** Bytes one async copy moves. */
export const ASYNC_COPY_BYTES = 16;

/** A named compile-time constant and what it is, for the comment above its declaration. */
export interface DimConstant {
  name: string;
  value: number;
  note: string;
}

export interface Kernel {
  /** Invocations (threads) per workgroup. */
  invocations: number;
  dims: DimConstant[];
  /** Every port of the kernel signature, inputs then outputs: the global buffers. */
  ports: readonly Port[];
  /** On-chip floats per workgroup and global scratch floats per workgroup. */
  workgroupFloats: number;
  scratchFloats: number;
  body: Stmt[];
  /** The layouts chosen for on-chip buffers and the bank conflicts they leave (compiler/kernel/banks.ts). */
  onChip: OnChipLayout;
}

/**
 * Shared-memory bank conflicts of a kernel's on-chip accesses for one warp of 32 lanes and 32
 * banks of 4 bytes: `worst` the most wavefronts one phase of a request takes (1: no conflict),
 * `wavefrontsPerRequest` the wavefronts per conflict-free wavefront, averaged over the requests a
 * warp makes per chunk (a request of 16 bytes per lane has 4 phases of 8 lanes).
 */
export interface BankFigures {
  /** Requests a warp makes per chunk (loops whose trip count is known at compile time counted). */
  requests: number;
  worst: number;
  wavefrontsPerRequest: number;
}

export interface OnChipLayout {
  /** Buffers whose column index is XORed with `(row % width) * step`; every other buffer is row-major. */
  swizzles: { buffer: string; width: number; step: number }[];
  /** The conflicts with every buffer row-major, and with the chosen layouts. */
  rowMajor: BankFigures;
  chosen: BankFigures;
}

export const int = (value: number): Expr => ({ kind: 'int', value });
export const float = (value: number): Expr => ({ kind: 'float', value });
export const name = (n: string): Expr => ({ kind: 'name', name: n });
export const uniform = (n: Uniform): Expr => ({ kind: 'uniform', name: n });
export const load = (buffer: Buffer, index: Expr): Expr => ({ kind: 'load', buffer, index });
export const compare = (op: CompareOp, a: Expr, b: Expr): Expr => ({ kind: 'compare', op, a, b });
export const select = (condition: Expr, ifTrue: Expr, ifFalse: Expr): Expr => ({
  kind: 'select',
  condition,
  ifTrue,
  ifFalse,
});
export const floatOp = (op: FloatOp, a: Expr, b: Expr): Expr => ({ kind: 'float-op', op, a, b });

export const comment = (text: string): Stmt => ({ kind: 'comment', text });
export const blank: Stmt = { kind: 'blank' };
export const constant = (n: string, type: Type, value: Expr): Stmt => ({
  kind: 'let',
  name: n,
  type,
  value,
  mutable: false,
});
export const variable = (n: string, type: Type, value: Expr): Stmt => ({
  kind: 'let',
  name: n,
  type,
  value,
  mutable: true,
});
export const assign = (n: string, value: Expr): Stmt => ({ kind: 'assign', name: n, value });
export const store = (buffer: Buffer, index: Expr, value: Expr): Stmt => ({ kind: 'store', buffer, index, value });
export const barrier = (storage: boolean): Stmt => ({ kind: 'barrier', storage });

/** The direct operands of an expression. */
export function operands(e: Expr): Expr[] {
  switch (e.kind) {
    case 'load':
    case 'load-bf16':
      return [e.index];
    case 'index':
    case 'min':
    case 'float-op':
    case 'compare':
    case 'or':
      return [e.a, e.b];
    case 'unary':
    case 'operand':
    case 'shuffle-xor':
      return [e.x];
    case 'fragment-element':
      return [e.element];
    case 'select':
      return [e.condition, e.ifTrue, e.ifFalse];
    case 'on-chip-element':
      return e.laidOut ? [e.laidOut] : [e.flat, e.rowStart, e.row, e.col];
    default:
      return [];
  }
}

/** Every expression a statement reads directly (not those of nested statements). */
export function statementExprs(s: Stmt): Expr[] {
  switch (s.kind) {
    case 'let':
    case 'assign':
      return [s.value];
    case 'store':
      return [s.index, s.value];
    case 'for':
      return [s.from, s.to, s.step];
    case 'while':
    case 'if':
      return [s.condition];
    case 'store-bf16':
      return [s.index, s.value];
    case 'load-fragment':
      return [s.index];
    case 'pack-fragment':
      return s.values;
    case 'async-copy':
      return [s.index, s.sourceIndex];
    default:
      return [];
  }
}

/** The statements nested in a statement. */
export const nested = (s: Stmt): Stmt[] =>
  s.kind === 'for' || s.kind === 'while' || s.kind === 'if' || s.kind === 'block' ? s.body : [];

/** The expression with each direct operand replaced by `f` of it (the same object when none changes). */
export function mapOperands(e: Expr, f: (x: Expr) => Expr): Expr {
  switch (e.kind) {
    case 'load':
    case 'load-bf16': {
      const index = f(e.index);
      return index === e.index ? e : { ...e, index };
    }
    case 'index':
    case 'min':
    case 'float-op':
    case 'compare':
    case 'or': {
      const [a, b] = [f(e.a), f(e.b)];
      return a === e.a && b === e.b ? e : { ...e, a, b };
    }
    case 'unary':
    case 'operand':
    case 'shuffle-xor': {
      const x = f(e.x);
      return x === e.x ? e : { ...e, x };
    }
    case 'fragment-element': {
      const element = f(e.element);
      return element === e.element ? e : { ...e, element };
    }
    case 'select': {
      const [condition, ifTrue, ifFalse] = [f(e.condition), f(e.ifTrue), f(e.ifFalse)];
      return condition === e.condition && ifTrue === e.ifTrue && ifFalse === e.ifFalse
        ? e
        : { ...e, condition, ifTrue, ifFalse };
    }
    case 'on-chip-element': {
      if (e.laidOut) {
        const laidOut = f(e.laidOut);
        return laidOut === e.laidOut ? e : { ...e, laidOut };
      }
      const [flat, rowStart, row, col] = [f(e.flat), f(e.rowStart), f(e.row), f(e.col)];
      return flat === e.flat && rowStart === e.rowStart && row === e.row && col === e.col
        ? e
        : { ...e, flat, rowStart, row, col };
    }
    default:
      return e;
  }
}

const bufferKey = (b: Buffer) => (b.kind === 'port' ? `${b.port.io}.${b.port.role}.${b.port.name}` : b.kind);

/** A key equal for structurally equal expressions. */
export function exprKey(e: Expr): string {
  switch (e.kind) {
    case 'int':
    case 'float':
      return `${e.kind}:${e.value}`;
    case 'name':
    case 'dim':
    case 'uniform':
      return `${e.kind}:${e.name}`;
    case 'fragment-element':
      return `${e.fragment}[${exprKey(e.element)}]`;
    case 'load':
      return `${bufferKey(e.buffer)}[${exprKey(e.index)}]`;
    case 'aligned':
      return `aligned${e.bytes}(${bufferKey(e.buffer)})`;
    default: {
      const tag =
        'op' in e
          ? e.op
          : 'fn' in e
            ? e.fn
            : e.kind === 'shuffle-xor'
              ? `${e.kind}${e.mask}/${e.width}`
              : e.kind === 'on-chip-element'
                ? `${e.buffer}/${e.size}/${e.columns}`
                : e.kind;
      return `${e.kind}${tag}(${operands(e).map(exprKey).join(',')})`;
    }
  }
}

/** Every expression of a body, nested statements' and operands' included (iteratively: bodies can be thousands deep). */
export function everyExpr(body: readonly Stmt[]): Expr[] {
  const pending: Stmt[] = [...body];
  const exprs: Expr[] = [];
  while (pending.length > 0) {
    const s = pending.pop()!;
    exprs.push(...statementExprs(s));
    pending.push(...nested(s));
  }
  for (let i = 0; i < exprs.length; i++) exprs.push(...operands(exprs[i]));
  return exprs;
}

/** The names a body's expressions read. */
export function namesRead(body: readonly Stmt[]): Set<string> {
  return new Set(everyExpr(body).flatMap((x) => (x.kind === 'name' ? [x.name] : [])));
}
