/**
 * The one printer of the kernel IR (compiler/kernel/ir.ts) for C-like languages: statements and
 * expressions are spelt here, what differs between WGSL and CUDA comes from the Dialect, and where
 * a port's elements live from the target's Memory. Comments pass through targets/text.ts.
 */
import type { Buffer, Expr, Kernel, Stmt, Type, Uniform } from '../../compiler/kernel/ir.ts';
import type { UnaryFn } from '../../compiler/ir/ir.ts';
import type { Port } from '../../core/signature.ts';
import { commentText } from '../text.ts';
import type { Dialect } from './dialect.ts';
import { Lines } from './lines.ts';

/** The arrays every C-like target declares for on-chip memory and global scratch. */
export const WORKGROUP_ARRAY = 'smem';
export const SCRATCH_ARRAY = 'scratch';

/** Unary functions the dialects spell as operators, whose operand must be parenthesised. */
const OPERATOR_UNARY: ReadonlySet<UnaryFn> = new Set(['neg', 'recip', 'step']);

const isXor = (e: Expr) => e.kind === 'index' && e.op === '^';

/** What an on-chip element stands for once its buffer's layout is chosen (compiler/kernel/banks.ts); any other expression itself. */
function laidOut(e: Expr): Expr {
  if (e.kind !== 'on-chip-element') return e;
  if (!e.laidOut) throw new Error(`the layout of on-chip buffer ${e.buffer} was never chosen`);
  return laidOut(e.laidOut);
}

/** How a target binds the kernel's globals. */
export interface Memory {
  /** The array holding a port, and where in it the port's flat element `index` is. */
  port(port: Port, index: Expr): { array: string; index: Expr };
  uniform(name: Uniform): string;
  /** A port's element as the kernel reads it (widened to float where global memory holds bf16); absent: as is. */
  read?(port: Port, element: string): string;
  /** The value stored into a port's element (rounded where global memory holds bf16); absent: as is. */
  written?(port: Port, value: string): string;
}

export class Printer {
  constructor(
    private readonly d: Dialect,
    private readonly memory: Memory,
  ) {}

  /** The kernel's body: its named constants, then its statements. */
  kernel(k: Kernel, L: Lines): void {
    for (const c of k.dims) {
      L.line(`// ${commentText(c.note)}`);
      L.line(this.d.constant(c.name, this.d.indexType, String(c.value)));
    }
    this.statements(k.body, L);
  }

  statements(body: readonly Stmt[], L: Lines): void {
    for (const s of body) this.statement(s, L);
  }

  private type(t: Type): string {
    return t === 'index' ? this.d.indexType : t === 'float' ? this.d.floatType : 'bool';
  }

  private element(buffer: Buffer, index: Expr): string {
    if (buffer.kind === 'workgroup') return `${WORKGROUP_ARRAY}[${this.expr(index)}]`;
    if (buffer.kind === 'scratch') return `${SCRATCH_ARRAY}[${this.expr(index)}]`;
    const at = this.memory.port(buffer.port, index);
    return `${at.array}[${this.expr(at.index)}]`;
  }

  statement(s: Stmt, L: Lines): void {
    const d = this.d;
    switch (s.kind) {
      case 'comment':
        L.line(`// ${commentText(s.text)}`);
        return;
      case 'blank':
        L.line('');
        return;
      case 'let':
        L.line((s.mutable ? d.variable : d.constant)(s.name, this.type(s.type), this.value(s.value)));
        return;
      case 'assign':
        L.line(`${s.name} = ${this.value(s.value)};`);
        return;
      case 'store': {
        const value = this.value(s.value);
        const stored =
          s.buffer.kind === 'port' && this.memory.written ? this.memory.written(s.buffer.port, value) : value;
        L.line(`${this.element(s.buffer, s.index)} = ${stored};`);
        return;
      }
      case 'for': {
        const step = s.step.kind === 'int' && s.step.value === 1 ? undefined : this.expr(s.step);
        if (s.rolled && d.rolledLoop) L.line(d.rolledLoop);
        L.open(d.loop(s.counter, this.expr(s.from), this.expr(s.to), step));
        break;
      }
      case 'while':
        L.open(`while (${this.expr(s.condition)})`);
        break;
      case 'if':
        L.open(`if (${this.expr(s.condition)})`);
        break;
      case 'block':
        L.open('');
        break;
      case 'barrier':
        L.line(...d.barrier(s.storage).split('\n'));
        return;
      case 'warp-barrier':
        if (!d.warpBarrier) throw new Error('this kernel language has no warp barrier');
        L.line(d.warpBarrier);
        return;
      case 'fragment':
      case 'store-bf16':
      case 'load-fragment':
      case 'pack-fragment':
      case 'mma':
        L.line(this.fragments().statement(s, (e) => this.value(e)));
        return;
      case 'async-copy':
        L.line(
          this.asyncCopy().copy(this.element({ kind: 'workgroup' }, s.index), this.element(s.source, s.sourceIndex)),
        );
        return;
      case 'async-commit':
        L.line(this.asyncCopy().commit);
        return;
      case 'async-wait':
        L.line(this.asyncCopy().wait(s.pending));
        return;
    }
    this.statements(s.body, L);
    L.close();
  }

  expr(x: Expr): string {
    const d = this.d;
    const e = x.kind === 'on-chip-element' ? laidOut(x) : x;
    switch (e.kind) {
      case 'int':
        return String(e.value);
      case 'float':
        return d.float(e.value);
      case 'name':
      case 'dim':
        return e.name;
      case 'uniform':
        return this.memory.uniform(e.name);
      case 'load': {
        const element = this.element(e.buffer, e.index);
        return e.buffer.kind === 'port' && this.memory.read ? this.memory.read(e.buffer.port, element) : element;
      }
      case 'index': {
        const [a, b] = [laidOut(e.a), laidOut(e.b)];
        // Products, quotients, remainders and XORs wrap a compound operand, and a XOR is wrapped
        // wherever it is an operand (C ranks `^` below `+` and `<`; WGSL refuses to mix it
        // unparenthesised), so no reader needs precedence rules.
        const scaling = e.op === '*' || e.op === '/' || e.op === '%' || e.op === '^';
        const wrapA = (scaling && a.kind === 'index') || isXor(a);
        const wrapB = b.kind === 'index' && (scaling || e.op === '-' || b.op === '-' || b.op === '^');
        return `${this.wrapped(a, wrapA)} ${e.op} ${this.wrapped(b, wrapB)}`;
      }
      case 'min':
        return d.min(this.expr(e.a), this.expr(e.b));
      case 'float-op':
        return `(${this.arithmetic(e)})`;
      case 'unary':
        // A function-call spelling has parentheses of its own; `neg`, `recip` and `step` are operators.
        return d.unary(e.fn, OPERATOR_UNARY.has(e.fn) ? this.expr(e.x) : this.value(e.x));
      case 'compare':
        const [a, b] = [laidOut(e.a), laidOut(e.b)];
        return `${this.wrapped(a, isXor(a))} ${e.op} ${this.wrapped(b, isXor(b))}`;
      case 'or':
        return `${this.expr(e.a)} || ${this.expr(e.b)}`;
      case 'select':
        return d.select(this.expr(e.condition), this.expr(e.ifTrue), this.expr(e.ifFalse));
      case 'operand':
        return d.matmulOperand ? d.matmulOperand(this.value(e.x)) : this.expr(e.x);
      case 'shuffle-xor':
        if (!d.shuffleXor) throw new Error('this kernel language has no lane exchange');
        return d.shuffleXor(this.expr(e.x), e.mask, e.width);
      case 'fragment-element':
        return this.fragments().element(e.fragment, this.expr(e.element));
      case 'aligned': {
        if (e.buffer.kind !== 'port') throw new Error('only a port has a base address to check');
        return this.asyncCopy().aligned(this.memory.port(e.buffer.port, { kind: 'int', value: 0 }).array, e.bytes);
      }
      case 'load-bf16':
        return this.asyncCopy().readBf16(this.expr(e.index));
      case 'on-chip-element':
        return this.expr(laidOut(e));
    }
  }

  private asyncCopy(): NonNullable<Dialect['asyncCopy']> {
    if (!this.d.asyncCopy) throw new Error('this kernel language has no asynchronous copies');
    return this.d.asyncCopy;
  }

  private fragments(): NonNullable<Dialect['fragments']> {
    if (!this.d.fragments) throw new Error('this kernel language has no tensor-core fragments');
    return this.d.fragments;
  }

  /** A whole statement's value: arithmetic needs no parentheses of its own there. */
  private value(e: Expr): string {
    return e.kind === 'float-op' ? this.arithmetic(e) : this.expr(e);
  }

  /**
   * Float arithmetic without outer parentheses; an operand is parenthesised unless it binds
   * tighter (a product inside a sum) or is the left operand of the same precedence, so the
   * evaluation order, which float rounding depends on, is the tree's.
   */
  private arithmetic(e: Expr & { kind: 'float-op' }): string {
    const rank = (op: string) => (op === '*' || op === '/' ? 2 : 1);
    const side = (x: Expr, left: boolean) => {
      if (x.kind !== 'float-op') return this.expr(x);
      const bare = rank(x.op) > rank(e.op) || (left && rank(x.op) === rank(e.op));
      return bare ? this.arithmetic(x) : `(${this.arithmetic(x)})`;
    };
    return `${side(e.a, true)} ${e.op} ${side(e.b, false)}`;
  }

  private wrapped(e: Expr, wrap: boolean): string {
    return wrap ? `(${this.expr(e)})` : this.expr(e);
  }
}
