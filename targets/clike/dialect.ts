/** What differs between C-like kernel languages; everything else is emitted once in clike/. */
import type { UnaryFn } from '../../compiler/ir/ir.ts';
import type { Expr, Stmt } from '../../compiler/kernel/ir.ts';

/** The kernel IR's warp-level tensor-core statements. */
export type FragmentStmt = Extract<
  Stmt,
  { kind: 'fragment' | 'store-bf16' | 'load-fragment' | 'pack-fragment' | 'mma' }
>;

/** How a language with tensor cores spells their statements. */
export interface FragmentSpelling {
  /** The statement as one line; `expr` spells its expressions. */
  statement(s: FragmentStmt, expr: (e: Expr) => string): string;
  /** This lane's element of an accumulator fragment. */
  element(fragment: string, element: string): string;
}

/** How a language with asynchronous global-to-on-chip copies spells them (16 bytes each, landing as global memory holds them). */
export interface AsyncCopySpelling {
  /** Starts the copy to the on-chip element `shared` from the global element `global` (both spelt as array elements). */
  copy(shared: string, global: string): string;
  /** Closes this invocation's group of copies. */
  commit: string;
  /** Waits until at most `pending` groups are in flight. */
  wait(pending: number): string;
  /** Whether the array's first element lies at a multiple of `bytes`. */
  aligned(array: string, bytes: number): string;
  /** The on-chip bf16 element `index` (counted in bf16 from on-chip memory's start) as f32. */
  readBf16(index: string): string;
}

export interface Dialect {
  /** The type of loop counters and indices. */
  indexType: string;
  floatType: string;
  /** A float literal. */
  float(value: number): string;
  unary(fn: UnaryFn, x: string): string;
  select(condition: string, ifTrue: string, ifFalse: string): string;
  /** `let`-style immutable and `var`-style mutable declarations. */
  constant(name: string, type: string, value: string): string;
  variable(name: string, type: string, value: string): string;
  /** `for (i = from; i < to; i += step)` header, without the brace. */
  loop(name: string, from: string, to: string, step?: string): string;
  /** The line before a loop the kernel keeps rolled (`Stmt` for `rolled`); absent: the language does not unroll. */
  rolledLoop?: string;
  min(a: string, b: string): string;
  /** Barrier after a stage; `storage` when global memory written in it is read next. */
  barrier(storage: boolean): string;
  /** A barrier among the lanes of one warp, ordering their memory accesses; absent where the language has none (the scheduler then gives no rows to warps). */
  warpBarrier?: string;
  /** A matmul operand as the product reads it, e.g. rounded to bf16; absent: as is. */
  matmulOperand?(x: string): string;
  /** `x` of the lane `lane ^ mask` among groups of `width` lanes; absent where the language has no such exchange. */
  shuffleXor?(x: string, mask: number, width: number): string;
  /** Tensor-core fragments; absent where the language has none (the scheduler then plans no such product). */
  fragments?: FragmentSpelling;
  /** Asynchronous copies; absent where the language has none (the CUDA renderer alone plans them). */
  asyncCopy?: AsyncCopySpelling;
}
