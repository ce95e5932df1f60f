/**
 * The lowering of a kernel's read-ahead (compiler/schedule/prefetch.ts): each port read ahead has
 * its base checked for 16-byte alignment once; the rows of the chunk the walk takes first are
 * copied before the walk; each chunk waits for its copies at its start and starts those of the
 * chunk the walk takes next (walk.ts's ChunkOrder: the following chunk forward, the one before in
 * reverse) after the barrier the plan chose; a stage of such a port reads its slot where the base
 * let the rows be copied.
 *
 * A slot holds the rows as global memory does (16-byte copies land as they are). Rows stored as
 * bf16 are widened where the stage reads the slot into the input's f32 buffer: the copies then
 * move half the bytes, and every other reader of the buffer stays f32.
 */
import { identifier } from '../../core/mangle.ts';
import { size } from '../../core/shape.ts';
import type { Port } from '../../core/signature.ts';
import type { PrefetchSlot, ScheduledKernel } from '../schedule/kernel.ts';
import { add, min, mul, sub } from './affine.ts';
import {
  ASYNC_COPY_BYTES,
  type Expr,
  type Stmt,
  barrier,
  blank,
  comment,
  compare,
  constant,
  int,
  load,
  name,
  select,
  uniform,
} from './ir.ts';
import { type Ports, portText } from './ports.ts';
import type { DimNames } from './tensor-index.ts';
import type { ChunkOrder, WalkInputs } from './walk.ts';

const bh = name('bh');
const tid = name('tid');

/** Whether a port read ahead has its base 16-byte aligned, so its rows can be copied ahead. */
const alignedName = (port: Port) => `aligned_${identifier(port)}`;

interface ReadAheadPort extends PrefetchSlot {
  port: Port;
  node: number;
}

export class ReadAhead {
  private readonly inputs: ReadAheadPort[];

  constructor(
    private readonly k: ScheduledKernel,
    ports: Ports,
    private readonly names: DimNames,
    private readonly walk: WalkInputs,
    private readonly order: ChunkOrder,
  ) {
    this.inputs = [...(k.prefetch ?? [])].map(([node, slot]) => {
      const op = k.program.nodes[node].op;
      const port = op.kind === 'input' ? ports.ofInput(op.name) : undefined;
      if (!port) throw new Error(`the prefetched node %${node} is not an input port`);
      return { port, node, ...slot };
    });
  }

  /** Which ports can be read ahead (their base 16-byte aligned), and the copies of the chunk walked first. */
  prologue(): Stmt[] {
    if (this.inputs.length === 0) return [];
    return [
      comment(
        "Inputs read ahead: while a chunk computes, the next one's rows copy to shared memory 16 bytes " +
          'at a time where a tensor starts 16-byte aligned (else they are read from global memory when staged).',
      ),
      ...this.inputs.map(({ port }) =>
        constant(alignedName(port), 'bool', {
          kind: 'aligned',
          buffer: { kind: 'port', port },
          bytes: ASYNC_COPY_BYTES,
        }),
      ),
      ...this.copies(this.order.first, 'the first chunk', () => true),
      blank,
    ];
  }

  /** At a chunk's start: its copies have landed, for every thread. */
  chunkStart(): Stmt[] {
    if (this.inputs.length === 0) return [];
    return [
      blank,
      comment(
        "This chunk's rows read ahead have landed: each thread waits for its copies, the barrier for every thread's.",
      ),
      { kind: 'async-wait', pending: 0 },
      barrier(false),
    ];
  }

  /**
   * The next chunk's copies that start after stage `stage`'s barrier (absent: at the chunk's end),
   * once every warp has staged this chunk from their slots.
   */
  next(stage?: number): Stmt[] {
    return this.copies(this.order.next, 'the next chunk', (at) => at === stage);
  }

  /** Element `e` of the chunk's rows of input `node` as its stage reads it: from its slot where it was read ahead. */
  staged(node: number, port: Port, global: Expr, e: Expr): Expr {
    const slot = this.k.prefetch?.get(node);
    if (slot === undefined) return load({ kind: 'port', port }, global);
    // A bf16 slot is read as bf16 elements from on-chip memory's start: twice its float offset.
    const copied: Expr =
      slot.elementBytes === 2
        ? { kind: 'load-bf16', index: add(int(slot.offset * 2), e) }
        : load({ kind: 'workgroup' }, add(int(slot.offset), e));
    return select(name(alignedName(port)), copied, load({ kind: 'port', port }, global));
  }

  /**
   * The async copies of the rows of the chunk that starts at token `at.token` (where the call has
   * it), of each input `which` takes, to its slot, as one commit group; rows past the call are not
   * copied (the stage reads a view's last row there, a rate as 0).
   */
  private copies(at: ChunkOrder['first'], chunk: string, which: (issueAfter?: number) => boolean): Stmt[] {
    const rows = name('ahead_rows');
    const inputs = this.inputs.filter((x) => which(x.issueAfter));
    if (inputs.length === 0) return [];
    // Each invocation's copies are unrolled (a handful: a slot holds one chunk's rows), each
    // guarded by the rows the call has; a loop kept its counter and addresses live (ptxas: a
    // block per SM fewer on one example).
    const copyFloats = ASYNC_COPY_BYTES / 4;
    const copies = inputs.map(({ port, node, offset, elementBytes }): Stmt => {
      const shape = this.k.program.nodes[node].shape;
      const width = this.names(size(shape.slice(1)));
      // Elements (as global memory holds them) per copy, and per round of every invocation's copy.
      const perCopy = ASYNC_COPY_BYTES / elementBytes;
      const step = this.k.invocations * perCopy;
      const unrolled = [...Array(Math.ceil(size(shape) / step)).keys()].map((i): Stmt => {
        const e = add(mul(tid, perCopy), int(i * step));
        const slot = add(int(offset), add(mul(tid, copyFloats), int(i * this.k.invocations * copyFloats)));
        const source = add(mul(add(mul(bh, uniform('T')), at.token), width), e);
        return {
          kind: 'if',
          condition: compare('<', e, mul(rows, width)),
          body: [{ kind: 'async-copy', index: slot, source: { kind: 'port', port }, sourceIndex: source }],
        };
      });
      return { kind: 'if', condition: name(alignedName(port)), body: unrolled };
    });
    return [
      comment(`Start copying the rows of ${chunk} ahead: ${inputs.map((x) => portText(x.port)).join(', ')}.`),
      {
        kind: 'if',
        condition: at.exists,
        body: [constant('ahead_rows', 'index', min(this.walk.rows, sub(uniform('T'), at.token))), ...copies],
      },
      { kind: 'async-commit' },
    ];
  }
}
