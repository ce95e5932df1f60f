/**
 * Where a kernel's values live, as kernel-IR expressions: a buffered node's element (on chip, where
 * its layout is chosen after lowering, or in the workgroup's slice of scratch), and a carried
 * value's home (on chip, in scratch, in place in its output port, or passed from the call's input
 * port to its output).
 */
import { type Shape, size } from '../../core/shape.ts';
import type { Carried, Home, Placement, ScheduledKernel } from '../schedule/kernel.ts';
import { add, mul, sub } from './affine.ts';
import { onChipElement } from './banks.ts';
import { type Buffer, type Expr, type Stmt, float, int, load, name, select, store } from './ir.ts';
import type { Ports } from './ports.ts';
import { updateProductName } from './tensor-core-stages.ts';
import { type DimNames, Index } from './tensor-index.ts';

/** True unless the chunk starts a mini-batch after another ended it (then every accumulator is zero). */
export const ACCUM_LIVE = 'accum_live';
/** True for the call's last chunk, which writes the carried values no chunk hands on (Home `ports`). */
export const LAST_CHUNK = 'last_chunk';
/** Which slot (0 or 1) of a ping-ponging home (OnChipHome `pingPong`) the chunk reads; its update writes the other. */
export const PHASE = 'phase';

/** The slot of a home an access takes: the one the chunk reads (`current`), or the one its update writes (`next`). */
export type Slot = 'current' | 'next';

const bh = name('bh');

export class Places {
  private readonly stateShape: Map<string, Shape>;
  /** Per chain of buffers shared in place (by its first node): whether its nodes agree on rows and columns. */
  private chainsAgree: Map<number, boolean> | undefined;

  constructor(
    private readonly k: ScheduledKernel,
    private readonly ports: Ports,
    private readonly names: DimNames,
  ) {
    this.stateShape = new Map(k.chunk.layer.states.map((s) => [s.name, s.shape]));
  }

  /**
   * The name under which a buffered node's on-chip layout is chosen. A chain sharing one buffer in
   * place, where one stage reads element e and the next writes it, takes its first node's name
   * when its nodes agree on rows and columns; otherwise it stays row-major (no name).
   */
  private layoutName(id: number): string | undefined {
    const first = this.k.inPlace.get(id);
    if (first === undefined) return `%${id}`;
    if (!this.chainsAgree) {
      const trailing = (n: number) => this.k.program.nodes[n].shape.slice(-2).join('x');
      this.chainsAgree = new Map();
      for (const [n, f] of this.k.inPlace)
        this.chainsAgree.set(f, (this.chainsAgree.get(f) ?? true) && trailing(n) === trailing(f));
    }
    return this.chainsAgree.get(first) ? `%${first}` : undefined;
  }

  /**
   * Element `at` of a buffer named `buffer`; on chip, its layout is chosen after lowering
   * (banks.ts), or row-major for an unnamed buffer.
   */
  private place(p: Placement, at: Index, buffer: string | undefined, slotOffset: Expr = int(0)): Expr {
    const start = add(int(p.offset), slotOffset);
    return p.space === 'workgroup'
      ? load({ kind: 'workgroup' }, add(start, buffer === undefined ? at.flat() : onChipElement(buffer, at)))
      : load({ kind: 'scratch' }, add(add(mul(bh, this.k.scratchFloats), int(p.offset)), at.flat()));
  }

  /** Element `at` of a buffered node; a product computed in an update stage is the value that stage named. */
  node(id: number, at: Index): Expr {
    if (this.k.updateProducts?.has(id)) return name(updateProductName(id));
    return this.place(this.k.buffers.get(id)!, at, this.layoutName(id));
  }

  /**
   * Where a carried value lives: its buffer on chip or in scratch, or in place in its output port;
   * one passed from the call's input to its output (`ports`) is written to the output and read from
   * the input. `at` is the element, an index into the state's shape.
   */
  private home(
    h: Home,
    state: string,
    kind: Carried,
    at: Index,
    io: 'in' | 'out',
    slot: Slot,
  ): { buffer: Buffer; index: Expr } {
    if (h.space === 'global' || h.space === 'ports')
      return {
        buffer: this.ports.get(kind, h.space === 'ports' ? io : 'out', state),
        index: add(mul(bh, size(this.stateShape.get(state)!)), at.flat()),
      };
    const n = size(this.stateShape.get(state)!);
    const phase = name(PHASE);
    const slotOffset = !h.pingPong ? int(0) : mul(slot === 'current' ? phase : sub(int(1), phase), n);
    const placed = this.place(h, at, `${state}.${kind}`, slotOffset);
    if (placed.kind !== 'load') throw new Error('a placement is a load');
    return { buffer: placed.buffer, index: placed.index };
  }

  /** Element `flat` of a state, as an index into its shape. */
  stateIndex(state: string, flat: Expr): Index {
    return Index.flat(this.stateShape.get(state)!, flat, this.names);
  }

  /** A carried value as the chunk starts from it: one passed from the call's input is zero after the first chunk. */
  readHome(h: Home, state: string, kind: Carried, element: Index): Expr {
    const at = this.home(h, state, kind, element, 'in', 'current');
    const value = load(at.buffer, at.index);
    return h.space === 'ports' ? select(name(ACCUM_LIVE), value, float(0)) : value;
  }

  /**
   * A carried value after the chunk (`next`; `current`: the value the first chunk starts from):
   * one passed to the call's output is written by the last chunk alone.
   */
  writeHome(h: Home, state: string, kind: Carried, element: Index, value: Expr, slot: Slot = 'next'): Stmt {
    const at = this.home(h, state, kind, element, 'out', slot);
    const write = store(at.buffer, at.index, value);
    return h.space === 'ports' ? { kind: 'if', condition: name(LAST_CHUNK), body: [write] } : write;
  }

  /** Whether a carried value is kept in a buffer of its own (on chip or in scratch) between chunks. */
  static kept(h: Home): boolean {
    return h.space === 'workgroup' || h.space === 'scratch';
  }
}
