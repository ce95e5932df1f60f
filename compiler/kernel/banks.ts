/**
 * Layouts of on-chip buffers without bank conflicts, chosen from the kernel IR's index expressions.
 *
 * Shared memory (CUDA; WebGPU workgroup memory on the GPUs we target) serves a warp's request in
 * wavefronts: 32 banks of 4 bytes, word w in bank w % 32, one word per bank per wavefront (lanes
 * reading the same word share it). A warp whose lanes walk a column of a row-major buffer whose
 * rows are a multiple of 32 floats hits one bank 32 times. The lowering writes every on-chip
 * element as an OnChipElement (its row and column); here each access is evaluated for the lanes
 * of a warp (tid 0..31, sample iterations of the loops around it) under each layout a buffer may
 * take, row-major or its column XORed with `row % w` (w a power of two dividing the row), and each
 * buffer gets the layout with the fewest wavefronts over all its accesses, so reads and writes
 * agree. XOR keeps the buffer's size; padding rows would change the scheduler's placements.
 *
 * The walk is linear in the kernel: each statement once, its expressions once (the index
 * expressions evaluated are a few nodes deep); values computed at run time (uniforms, the walk's
 * position) are unknown, and a loop bound or condition that depends on one is taken as true.
 */
import { add, mod, mul, xor } from './affine.ts';
import {
  type BankFigures,
  type Expr,
  type OnChipElement,
  type OnChipLayout,
  type Stmt,
  int,
  operands,
  statementExprs,
} from './ir.ts';
import { size } from '../../core/shape.ts';
import type { Index } from './tensor-index.ts';
import { address, evaluate, fork, iterations, LANES, type Lanes, lanes, type Sample } from './lanes.ts';

/** Banks of 4 bytes. */
export const BANKS = 32;

/** Element `at` of the on-chip buffer `buffer`, its layout to be chosen by layOutOnChip. */
export function onChipElement(buffer: string, at: Index): Expr {
  const r = at.shape.length;
  if (r < 2 || at.shape[r - 2] < 2 || at.shape[r - 1] < 2) return at.flat();
  const dims = at.dims();
  return {
    kind: 'on-chip-element',
    buffer,
    size: size(at.shape),
    columns: at.shape[r - 1],
    flat: at.flat(),
    rowStart: at.at(at.shape, [...dims.slice(0, -1), int(0)]).flat(),
    row: dims[r - 2],
    col: dims[r - 1],
  };
}

/**
 * A layout: the column XORed with `(row % width) * step` (width 1: row-major). A step above 1
 * moves whole groups of columns, for warps that read a few rows of several neighbouring columns.
 */
export interface Swizzle {
  width: number;
  step: number;
}
const ROW_MAJOR: Swizzle = { width: 1, step: 1 };

/** The layouts a buffer with this many columns may take: XOR masks below 32 that keep a column in its row. */
function swizzlesFor(columns: number): Swizzle[] {
  const out = [ROW_MAJOR];
  for (let step = 1; step < BANKS; step *= 2)
    for (let width = 2; width * step <= BANKS && columns % (width * step) === 0; width *= 2) out.push({ width, step });
  return out;
}

/** The on-chip element an index contains, if any (index expressions are shallow). */
function elementOf(index: Expr): OnChipElement | undefined {
  const pending = [index];
  while (pending.length > 0) {
    const e = pending.pop()!;
    if (e.kind === 'on-chip-element') return e;
    pending.push(...operands(e));
  }
  return undefined;
}

/** How a request reads or writes: bytes per lane (16: four words, served a quarter warp per phase) and the lanes that take part. */
interface RequestShape {
  /** The index counts bf16 elements (2 bytes) rather than floats. */
  bf16: boolean;
  words: 1 | 4;
  lanes: number;
}
const F32: RequestShape = { bf16: false, words: 1, lanes: LANES };
const BF16: RequestShape = { bf16: true, words: 1, lanes: LANES };
/** ldmatrix: .x4 takes a 16-byte row address from each of 32 lanes, .x2 from 16. */
const LDMATRIX_X4: RequestShape = { bf16: true, words: 4, lanes: LANES };
const LDMATRIX_X2: RequestShape = { bf16: true, words: 4, lanes: 16 };
/** cp.async: 16 bytes from each of 32 lanes. */
const ASYNC_COPY: RequestShape = { bf16: false, words: 4, lanes: LANES };

/** Wavefronts summed over requests (each weighted by how often a warp makes it per chunk). */
interface Tally {
  requests: number;
  wavefronts: number;
  /** The wavefronts without conflicts: one per phase. */
  ideal: number;
  worst: number;
}
const emptyTally = (): Tally => ({ requests: 0, wavefronts: 0, ideal: 0, worst: 0 });
function addTo(t: Tally, u: Tally): void {
  t.requests += u.requests;
  t.wavefronts += u.wavefronts;
  t.ideal += u.ideal;
  t.worst = Math.max(t.worst, u.worst);
}

/** Scratch space of `tally` (it runs for every request under every layout tried). */
const COUNT = new Int32Array(BANKS);
const HEAD = new Int32Array(BANKS);
const NEXT = new Int32Array(LANES * 4);
const WORDS = new Float64Array(LANES * 4);
const SWIZZLED = new Float64Array(LANES);

/** Adds one request to `t`: per phase, the most distinct words that fall in one bank. */
function tally(t: Tally, index: Lanes, active: Uint8Array, shape: RequestShape, weight: number): void {
  const perPhase = shape.words === 4 ? LANES / 4 : LANES;
  let [total, phases] = [0, 0];
  for (let first = 0; first < shape.lanes; first += perPhase) {
    COUNT.fill(0);
    HEAD.fill(-1);
    let [n, most] = [0, 0];
    for (let l = first; l < Math.min(first + perPhase, shape.lanes); l++) {
      if (!active[l]) continue;
      const base = shape.bf16 ? Math.floor(index[l] / 2) : index[l];
      for (let k = 0; k < shape.words; k++) {
        // Each bank's distinct words as a list: lanes reading the same word share it.
        const word = base + k;
        const bank = ((word % BANKS) + BANKS) % BANKS;
        let at = HEAD[bank];
        while (at >= 0 && WORDS[at] !== word) at = NEXT[at];
        if (at >= 0) continue;
        WORDS[n] = word;
        NEXT[n] = HEAD[bank];
        HEAD[bank] = n++;
        most = Math.max(most, ++COUNT[bank]);
      }
    }
    if (n === 0) continue;
    total += most;
    phases++;
    t.worst = Math.max(t.worst, most);
  }
  if (phases === 0) return;
  t.requests += weight;
  t.wavefronts += weight * total;
  t.ideal += weight * phases;
}

const EVERY_LANE = new Uint8Array(LANES).fill(1);

/** Wavefronts of one request by every lane of a warp, of 4-byte words or (`bf16`) of bf16 elements. */
export function requestWavefronts(index: Lanes, bf16: boolean): number {
  const t = emptyTally();
  tally(t, index, EVERY_LANE, bf16 ? BF16 : F32, 1);
  return t.wavefronts;
}

/**
 * One request to a buffer whose layout is to be chosen, at one sample: the element is the last
 * term of its index (lower.ts adds it to the buffer's offset), so the address under a swizzle is
 * `rowStart + (col ^ (row % width) * step)`, `rowStart` including the offset.
 */
interface ElementRequest {
  rowMajor: Lanes;
  rowStart: Lanes;
  row: Lanes;
  col: Lanes;
  active: Uint8Array;
  weight: number;
  shape: RequestShape;
}

/** Every on-chip access of a kernel body: those of fixed layout tallied, the others kept per buffer. */
class Accesses {
  readonly fixed = emptyTally();
  readonly buffers = new Map<string, { columns: number; requests: ElementRequest[] }>();
  /** Every on-chip element of the body. */
  readonly elements = new Set<OnChipElement>();

  statements(body: readonly Stmt[], samples: Sample[]): void {
    // Statements no lane reaches at the samples are still walked: their elements need a layout.
    for (const s of body) {
      this.scan(statementExprs(s), samples);
      switch (s.kind) {
        case 'let':
          if (s.type !== 'float') for (const x of samples) x.env.set(s.name, evaluate(s.value, x.env, x.known));
          break;
        case 'assign':
          for (const x of samples)
            if (x.env.has(s.name)) {
              x.env.set(s.name, undefined);
              x.known.clear();
            }
          break;
        case 'store':
          if (s.buffer.kind === 'workgroup') this.request(s.index, F32, samples);
          break;
        case 'store-bf16':
          this.request(s.index, BF16, samples);
          break;
        case 'load-fragment':
          this.request(
            s.index,
            { ...(s.role === 'a' ? LDMATRIX_X4 : LDMATRIX_X2), bf16: s.elementBytes === 2 },
            samples,
          );
          break;
        case 'async-copy':
          this.request(s.index, ASYNC_COPY, samples);
          break;
        case 'for':
          this.statements(
            s.body,
            samples.flatMap((x) => iterations(s, x)),
          );
          break;
        case 'block':
          this.statements(s.body, samples);
          break;
        case 'while':
          this.statements(
            s.body,
            samples.map((x) => fork(x)),
          );
          break;
        case 'if':
          this.statements(
            s.body,
            samples.flatMap((x) => {
              const c = evaluate(s.condition, x.env, x.known);
              if (!c) return [fork(x)];
              const active = x.active.map((a, i) => (a && c[i] ? 1 : 0));
              return active.some((a) => a) ? [fork(x, active)] : [];
            }),
          );
          break;
      }
    }
  }

  /** The on-chip loads among `roots` (each once), as requests. */
  private scan(roots: Expr[], samples: Sample[]): void {
    const seen = new Set<Expr>();
    const pending = [...roots];
    while (pending.length > 0) {
      const e = pending.pop()!;
      if (seen.has(e)) continue;
      seen.add(e);
      if (e.kind === 'on-chip-element') this.elements.add(e);
      if (e.kind === 'load' && e.buffer.kind === 'workgroup') this.request(e.index, F32, samples);
      if (e.kind === 'load-bf16') this.request(e.index, BF16, samples);
      pending.push(...operands(e));
    }
  }

  private request(index: Expr, shape: RequestShape, samples: Sample[]): void {
    const element = elementOf(index);
    if (!element) {
      for (const x of samples) tally(this.fixed, address(index, x), x.active, shape, x.weight);
      return;
    }
    if (element.size <= BANKS) {
      // Every word of the buffer is in a bank of its own.
      for (const x of samples)
        addTo(this.fixed, { requests: x.weight, wavefronts: x.weight, ideal: x.weight, worst: 1 });
      return;
    }
    const buffer = this.buffers.get(element.buffer) ?? { columns: element.columns, requests: [] };
    this.buffers.set(element.buffer, buffer);
    for (const x of samples) {
      const at = (e: Expr) => address(e, x);
      const [rowMajor, flat, rowStart] = [at(index), at(element.flat), at(element.rowStart)];
      buffer.requests.push({
        rowMajor,
        rowStart: lanes((i) => rowMajor[i] - flat[i] + rowStart[i]),
        row: at(element.row),
        col: at(element.col),
        active: x.active,
        weight: x.weight,
        shape,
      });
    }
  }
}

/** The requests of one buffer under a layout. */
function tallyLayout(requests: readonly ElementRequest[], { width, step }: Swizzle): Tally {
  const t = emptyTally();
  for (const r of requests) {
    if (width > 1)
      for (let i = 0; i < LANES; i++) SWIZZLED[i] = r.rowStart[i] + ((r.col[i] ^ ((r.row[i] % width) * step)) >>> 0);
    tally(t, width <= 1 ? r.rowMajor : SWIZZLED, r.active, r.shape, r.weight);
  }
  return t;
}

const figures = (t: Tally): BankFigures => ({
  requests: Math.round(t.requests),
  worst: t.worst,
  wavefrontsPerRequest: t.ideal === 0 ? 1 : t.wavefronts / t.ideal,
});

/**
 * Chooses the layout of every on-chip buffer of a lowered body and sets each on-chip element's
 * index in it (OnChipElement.laidOut); returns what the choice measured.
 */
export function layOutOnChip(body: readonly Stmt[], { swizzle } = { swizzle: true }): OnChipLayout {
  const accesses = new Accesses();
  const tid = lanes((i) => i);
  accesses.statements(body, [
    { env: new Map([['tid', tid]]), active: new Uint8Array(LANES).fill(1), weight: 1, known: new Map() },
  ]);
  const [rowMajor, chosen] = [emptyTally(), emptyTally()];
  addTo(rowMajor, accesses.fixed);
  addTo(chosen, accesses.fixed);
  const layouts = new Map<string, Swizzle>();
  for (const [buffer, { columns, requests }] of accesses.buffers) {
    const plain = tallyLayout(requests, ROW_MAJOR);
    addTo(rowMajor, plain);
    // The first of the fewest wavefronts: row-major unless a swizzle saves some.
    let best: [Swizzle, Tally] = [ROW_MAJOR, plain];
    if (swizzle && plain.wavefronts > plain.ideal + 1e-9)
      for (const swizzle of swizzlesFor(columns).slice(1)) {
        const t = tallyLayout(requests, swizzle);
        if (t.wavefronts < best[1].wavefronts - 1e-9) best = [swizzle, t];
      }
    addTo(chosen, best[1]);
    if (best[0] !== ROW_MAJOR) layouts.set(buffer, best[0]);
  }
  const onChip: OnChipLayout = {
    swizzles: [...layouts].map(([buffer, swizzle]) => ({ buffer, ...swizzle })),
    rowMajor: figures(rowMajor),
    chosen: figures(chosen),
  };
  for (const e of accesses.elements) e.laidOut = laidOut(e, layouts.get(e.buffer) ?? ROW_MAJOR);
  return onChip;
}

/** The index of an on-chip element under a layout. */
function laidOut(e: OnChipElement, { width, step }: Swizzle): Expr {
  return width <= 1 ? e.flat : add(e.rowStart, xor(e.col, mul(mod(e.row, width), step)));
}
