/**
 * A scheduled kernel: the derived mini-batch program laid out for one workgroup (thread block)
 * per (sequence, head) that walks the chunks in order. Renderers turn it into source text.
 */
import type { ChunkProgram } from '../dualform/derive.ts';
import type { Program } from '../ir/ir.ts';
import type { Barrier } from './barriers.ts';
import type { Tile } from './tiles.ts';

export interface TargetLimits {
  /** On-chip bytes per workgroup the kernel may use (WebGPU workgroup storage, CUDA shared memory). */
  workgroupBytes: number;
  /** Invocations (threads) per workgroup. */
  invocations: number;
  /**
   * Invocations per warp where the target has a barrier among a warp's lanes alone (CUDA's
   * `__syncwarp`: 32); absent where every barrier is the workgroup's (WGSL), and then no stage's
   * rows are given to warps.
   */
  lanes?: number;
  /**
   * What one multiprocessor holds of the workgroups resident on it: on-chip memory, `bytes` in all,
   * each workgroup's rounded up to `granule` bytes plus `reservedBytes` (CUDA's shared memory per
   * SM); `invocations` in all (CUDA: as many as the registers allow at the fewest a thread may
   * get); `workgroups` at most. Absent where the target does not say.
   */
  multiprocessor?: { bytes: number; granule: number; reservedBytes: number; invocations: number; workgroups: number };
}

/** Where a buffer lives: on chip, or in this workgroup's slice of a global scratch buffer. */
export interface Placement {
  space: 'workgroup' | 'scratch';
  /** Offset in f32 elements within that space. */
  offset: number;
}

/**
 * Where one carried value of a state tensor lives between chunks: on chip, in place in its output
 * buffer (`global`), or nowhere (`ports`): a value that no chunk but the first starts from and no
 * chunk but the last hands on (an accumulator when every chunk but the last ends a mini-batch) is
 * read from its input port by the first chunk, is zero in the others, and is written to its output
 * port by the last.
 */
export type Home = OnChipHome | { space: 'global' } | { space: 'ports' };

/**
 * A home on chip: one slot of the state's size, updated in place, or two (`pingPong`): each chunk
 * reads the slot the chunk before wrote and its update writes the other, so the update need not
 * wait for every warp to finish reading the old value (a block barrier); the chunk's closing
 * barrier orders one chunk's writes before the next one's reads.
 */
export type OnChipHome = Placement & { pingPong?: true };

/** The floats a home takes in its space: two slots of the state's size where it ping-pongs. */
export const homeFloats = (h: Home, stateSize: number): number =>
  'pingPong' in h && h.pingPong ? 2 * stateSize : stateSize;

/** What a state tensor carries between chunks: the state, its accumulator, and a rule's optimizer state. */
export type Carried = 'state' | 'accum' | 'opt';

/** The homes of one state tensor's carried values; `opt` only where the rule has momentum. */
export type Homes = { state: Home; accum: Home; opt?: Home };

export type Stage =
  /** Compute a node for every element into its buffer (inputs: load a view's rows). */
  | { kind: 'compute'; node: number }
  /** Write the processed rows of `output` to the output tensor. */
  | { kind: 'output'; node: number }
  /** Replace a state, its accumulator and its optimizer state (if any) with their values after the chunk. */
  | { kind: 'update'; state: string; stateNode: number; accumNode: number; optNode?: number }
  /**
   * A backward kernel's gradient of the chunk input `input` (node: its value): rows of a per-token
   * input written in place, a per-chunk input's added to its sequence-head's sum; `port` is the
   * program key of the input port whose gradient it is (the walk's `commit` is that of `scale`).
   */
  | { kind: 'gradient'; node: number; input: string; port: string };

export interface ScheduledKernel {
  chunk: ChunkProgram;
  program: Program;
  invocations: number;
  /** Nodes computed into buffers; every other node is recomputed inline where it is read. */
  buffers: Map<number, Placement>;
  states: Map<string, Homes>;
  /** The stages of one chunk, in order. */
  stages: Stage[];
  /** The register tile of every buffered product. */
  tiles: Map<number, Tile>;
  /**
   * The barrier after each stage: none where no hazard follows, `warp` where only lanes of one warp
   * exchange data, `storage` when global memory is involved.
   */
  barriers: Barrier[];
  /** The stages whose rows warps own (schedule/warp-rows.ts), by stage index; absent: every invocation takes every element. */
  warpRows?: ReadonlyMap<number, WarpRows>;
  workgroupFloats: number;
  scratchFloats: number;
  /**
   * Buffered nodes that share one buffer in place (schedule/in-place.ts), each with the first node
   * of its chain: a stage reads element e of one and writes element e of the next, so a chain
   * must index its buffer alike.
   */
  inPlace: ReadonlyMap<number, number>;
  /**
   * Products computed where a state's update stage reads them, element by element, instead of into
   * a buffer (a gradient as large as its state, read once by the update), with the state they
   * update; absent: none.
   */
  updateProducts?: ReadonlyMap<number, string>;
  /** Products a target computes on tensor cores (schedule/tensor-cores.ts); absent: none. */
  tensorCores?: TensorCorePlan;
  /** Per-token inputs read ahead into on-chip slots while the chunk before computes (schedule/prefetch.ts); absent: none. */
  prefetch?: PrefetchPlan;
  /**
   * The workgroup sizes the scheduler weighed for this kernel (schedule/workgroup-size.ts), smallest
   * first, each with its model's cycles per head and mini-batch; absent where the size was not
   * chosen from them (fixed by the caller, or the target's limit kept).
   */
  blockSizes?: readonly RatedBlockSize[];
}

/** One workgroup size as the block-size model rates it: cycles of a multiprocessor per head and mini-batch, full of heads and with one alone. */
export interface RatedBlockSize {
  invocations: number;
  full: number;
  alone: number;
}

/** The staged inputs whose next chunk is copied ahead asynchronously, by input node. */
export type PrefetchPlan = ReadonlyMap<number, PrefetchSlot>;

export interface PrefetchSlot {
  /** Where the slot starts in on-chip memory (floats, a multiple of 4: 16 bytes). */
  offset: number;
  /**
   * Bytes of one element in the slot, as global memory holds the input: 4 (f32, the stage copies
   * the slot's floats), or 2 (bf16: the slot holds half as many floats, and the stage widens it).
   */
  elementBytes: number;
  /** The stage after whose block barrier the next chunk's copies start (every warp has staged this chunk's by then); absent: at the chunk's end, after a barrier of their own. */
  issueAfter?: number;
}

/**
 * A stage whose result's rows (its first axis) belong to warps: warp w computes rows
 * [w rowsPerWarp, (w + 1) rowsPerWarp), its lanes taking their elements in turn; a register-tiled
 * product tiles the warp's rows with `tile` (schedule/tiles.ts) over the warp's lanes.
 */
export interface WarpRows {
  /** The extent of the first axis. */
  rows: number;
  rowsPerWarp: number;
  /** Elements per row (the product of the other axes). */
  rowElements: number;
  /** Warps in the workgroup and invocations in a warp. */
  warps: number;
  lanes: number;
  /** A register-tiled product's tile within its warp's rows. */
  tile?: Tile;
}

/** Products on warp-level tensor cores, each warp staging its operands as bf16 in a slice of its own. */
/**
 * The operands of a tensor-core product: `bf16` (mma m16n8k16, operands rounded to bf16, f32
 * accumulation), or `tf32x3` (mma m16n8k8 on tf32, each operand split into a high and a low tf32
 * part and the product summed from three mma, hi hi + hi lo + lo hi: f32's accuracy within a small
 * factor, staged as f32).
 */
export type MmaOperands = 'bf16' | 'tf32x3';

export interface TensorCorePlan {
  operands: MmaOperands;
  /** The products computed this way (buffered, or in their state's update stage), each with where its warps' staging slices start in on-chip memory (floats, a multiple of 4: 16 bytes). */
  products: ReadonlyMap<number, number>;
  /** Contraction columns staged at once: a multiple of the mma's contraction, 64 bytes at most. */
  slab: number;
  /** Staged elements (bf16, or f32 for tf32x3) between staged rows: the slab plus 16 bytes, so ldmatrix's rows fall in distinct banks. */
  rowStride: number;
  /**
   * Output tiles a warp computes at once, side by side along the output's columns, from one
   * staging of A's 16 rows (each with B's 8 columns of its own); a product with too few tiles to
   * keep every warp busy so takes fewer.
   */
  groupTiles: number;
  /** Rows of A at the start of each warp's slice: 16, or none where every product reads A from a view's copy. */
  aRows: number;
  /** Staged elements of each warp's slice: A's rows, then 8 of B transposed for each tile of a group (none where every product reads B from a view's copy). */
  warpElements: number;
  /**
   * Views whose chunk rows the block keeps a bf16 copy of, laid out for ldmatrix, by input node:
   * their staging stage writes it beside the f32 rows, and the products that take the view (or
   * its transpose) as an operand load fragments from it, where every warp would otherwise stage
   * the same rows. Absent: none.
   */
  copies?: ReadonlyMap<number, OperandCopy>;
}

/** A view's bf16 copy for tensor-core operands (TensorCorePlan.copies). */
export interface OperandCopy {
  /** Where it starts in on-chip memory (floats, a multiple of 4: 16 bytes). */
  offset: number;
  /** bf16 elements between its rows: the row plus 16 bytes, so ldmatrix's 8 rows fall in distinct banks. */
  rowStride: number;
  /** The stages from the view's staging to the last product that reads the copy. */
  from: number;
  to: number;
}
