/**
 * Which products run on tensor cores (warp-level mma: 16x8 output tiles, f32 accumulation; the
 * contraction in steps of 16 on bf16 operands, or of 8 on tf32 ones split in three for f32
 * accuracy, `MmaOperands`), for a target that has them and asks for such products (CUDA under
 * `--dtype bf16`, which rounds every product's operands anyway, or `tf32x3`). Decided from
 * shapes and on-chip room alone: a product
 * qualifies when padding its extents to the tile wastes at most half of each (padded rows and
 * columns are staged as zeros and never stored), and the warps' staging slices fit in on-chip
 * memory: in a gap no warp uses during the product where there is one, else after the buffers.
 *
 * Both kinds of product qualify: a buffered one (its compute stage stores the tiles), and one a
 * state's update stage computes where it reads it (`ScheduledKernel.updateProducts`), whose warps
 * then take the state's tiles and update each element from the accumulator in registers. Such an
 * update qualifies where the product is its state's only one (one tile loop per update) and its
 * operands read none of the values the update writes (warps update their tiles while others still
 * stage theirs). Everything else keeps its register-tiled or per-element loop.
 *
 * A bf16 product that takes a view (or its transpose) as an operand reads it from the view's bf16
 * copy (`copiedOperand`, TensorCorePlan.copies): the view's staging writes it once a chunk, laid
 * out for ldmatrix, where each warp would stage the same rows of it again for every product.
 * Where every product copies an operand, the warps' slices hold no rows of it.
 *
 * Where the staging goes and how the kernel is scheduled around it: tensor-core-placement.ts.
 */
import type { Carried, MmaOperands, ScheduledKernel, TensorCorePlan } from './kernel.ts';
import { homeKey } from './schedule.ts';
import { programKey } from '../../core/mangle.ts';

/** The mma shape: output rows, output columns, contraction per instruction (m16n8k16 bf16, m16n8k8 tf32). */
export const mmaTile = (operands: MmaOperands) => ({ m: 16, n: 8, k: operands === 'bf16' ? 16 : 8 }) as const;
/** Bytes of a staged operand element: bf16, or f32 (tf32x3 splits it in registers). */
export const stagedBytes = (operands: MmaOperands): 2 | 4 => (operands === 'bf16' ? 2 : 4);
export const WARP_LANES = 32;
/** At most this many bytes of contraction columns are staged at once, so a warp's slice stays small. */
const MAX_SLAB_BYTES = 64;
/** Padding after each staged row: 16 bytes, which keeps rows aligned for ldmatrix. */
const ROW_PADDING_BYTES = 16;

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;

/** Whether an extent fills at least half of the tiles it pads to. */
const fills = (extent: number, tile: number) => 2 * extent >= roundUp(extent, tile);

/** The product's output rows, output columns and contraction (the last axes; leading axes are a batch). */
export function productExtents(k: ScheduledKernel, id: number): { m: number; n: number; contraction: number } {
  const node = k.program.nodes[id];
  const a = k.program.nodes[node.args[0]];
  const r = node.shape.length;
  return { m: node.shape[r - 2], n: node.shape[r - 1], contraction: a.shape[r - 1] };
}

/**
 * The tiles a warp of this product takes at once: the plan's group, or fewer where the product
 * has too few tiles along its columns, or too few groups to keep every warp busy.
 */
export function groupOf(
  plan: Pick<TensorCorePlan, 'operands' | 'groupTiles'>,
  shape: readonly number[],
  warps: number,
): number {
  const r = shape.length;
  const mma = mmaTile(plan.operands);
  const others = shape.slice(0, r - 2).reduce((x, y) => x * y, 1) * Math.ceil(shape[r - 2] / mma.m);
  const columns = Math.ceil(shape[r - 1] / mma.n);
  let group = plan.groupTiles;
  while (group > 1 && (group > columns || others * Math.ceil(columns / group) < warps)) group /= 2;
  return group;
}

export type Sizing = Omit<TensorCorePlan, 'products'>;

/** The index of the stage that computes a product: its own, or the update stage that reads it. */
export function productStage(k: ScheduledKernel, id: number): number {
  const state = k.updateProducts?.get(id);
  return k.stages.findIndex((s) =>
    state === undefined ? s.kind === 'compute' && s.node === id : s.kind === 'update' && s.state === state,
  );
}

/** Where the tensor-core staging of a stage starts in on-chip memory (floats); undefined for a stage without. */
export function stageStaging(k: ScheduledKernel, stage: number): number | undefined {
  for (const [id, offset] of k.tensorCores?.products ?? []) if (productStage(k, id) === stage) return offset;
  return undefined;
}

/**
 * The update products that may run on tensor cores: each its state's only one, with operands that
 * read (inline, through unbuffered nodes) none of the values that state's update writes.
 */
function updateCandidates(k: ScheduledKernel): number[] {
  const byState = new Map<string, number[]>();
  for (const [id, state] of k.updateProducts ?? []) byState.set(state, [...(byState.get(state) ?? []), id]);
  const carried: Carried[] = ['state', 'accum', 'opt'];
  return [...byState].flatMap(([state, ids]) => {
    if (ids.length !== 1) return [];
    const written = new Set(carried.map((kind) => homeKey(kind, state)));
    const pending = [...k.program.nodes[ids[0]].args];
    const seen = new Set<number>();
    while (pending.length > 0) {
      const id = pending.pop()!;
      if (seen.has(id) || k.buffers.has(id)) continue;
      seen.add(id);
      const op = k.program.nodes[id].op;
      if (op.kind === 'input' && written.has(op.name)) return [];
      pending.push(...k.program.nodes[id].args);
    }
    return ids;
  });
}

/**
 * The view a product takes as an operand (`a` or `b`), itself or transposed, where it may be read
 * from the view's bf16 copy (TensorCorePlan.copies): a bf16 product of two axes whose extents fill
 * its tiles, and a view staged on chip whose rows are 16-byte multiples as bf16.
 */
export function copiedOperand(
  k: ScheduledKernel,
  id: number,
  role: 'a' | 'b',
): { node: number; transposed: boolean } | undefined {
  const nodes = k.program.nodes;
  const e = productExtents(k, id);
  const tile = mmaTile('bf16');
  if (nodes[id].shape.length !== 2 || e.m % tile.m !== 0 || e.n % tile.n !== 0 || e.contraction % tile.k !== 0)
    return undefined;
  const views = new Set(k.chunk.layer.views.map((v) => programKey({ role: 'view', name: v.name })));
  const isView = (x: number) => {
    const n = nodes[x];
    return (
      n.op.kind === 'input' &&
      views.has(n.op.name) &&
      n.shape.length === 2 &&
      n.shape[0] === k.chunk.rows &&
      n.shape[1] % 8 === 0 &&
      k.buffers.get(x)?.space === 'workgroup'
    );
  };
  const x = nodes[id].args[role === 'a' ? 0 : 1];
  if (isView(x)) return { node: x, transposed: false };
  const op = nodes[x].op;
  if (op.kind === 'transpose' && op.perm.join() === '1,0' && isView(nodes[x].args[0]))
    return { node: nodes[x].args[0], transposed: true };
  return undefined;
}

/**
 * The products that qualify and the staging they need, for warps that take `groupTiles` tiles at
 * once; with `copies`, the views they read from copies (`copied`).
 */
export function plan(
  k: ScheduledKernel,
  operands: MmaOperands,
  groupTiles: number,
  copies = true,
): { products: number[]; sizing: Sizing; copied: number[] } | undefined {
  if (k.invocations % WARP_LANES !== 0) return undefined;
  const tile = mmaTile(operands);
  const products: number[] = [];
  let contraction = 0;
  for (const id of [...k.buffers.keys(), ...updateCandidates(k)]) {
    if (k.program.nodes[id].op.kind !== 'matmul') continue;
    const e = productExtents(k, id);
    if (!fills(e.m, tile.m) || !fills(e.n, tile.n) || !fills(e.contraction, tile.k)) continue;
    products.push(id);
    contraction = Math.max(contraction, e.contraction);
  }
  if (products.length === 0) return undefined;
  const bytes = stagedBytes(operands);
  const slab = Math.min(MAX_SLAB_BYTES / bytes, roundUp(contraction, tile.k));
  const rowStride = slab + ROW_PADDING_BYTES / bytes;
  // Slices as large as the largest group a product takes: none may take the one asked for.
  const warps = k.invocations / WARP_LANES;
  const used = Math.max(...products.map((id) => groupOf({ operands, groupTiles }, k.program.nodes[id].shape, warps)));
  // Operands read from a view's copy need no room in the warps' slices.
  const copiesOf = (role: 'a' | 'b') =>
    products.map((id) => (copies && operands === 'bf16' ? copiedOperand(k, id, role) : undefined));
  const [copiesA, copiesB] = [copiesOf('a'), copiesOf('b')];
  const aRows = copiesA.every((c) => c) ? 0 : tile.m;
  const bRows = copiesB.every((c) => c) ? 0 : tile.n * used;
  const copied = [...new Set([...copiesA, ...copiesB].flatMap((c) => (c ? [c.node] : [])))];
  return {
    products,
    sizing: { operands, slab, rowStride, groupTiles: used, aRows, warpElements: (aRows + bRows) * rowStride },
    copied,
  };
}

/** bf16 elements between the rows of a view's copy: its row and 16 bytes. */
export const copyRowStride = (columns: number) => columns + ROW_PADDING_BYTES / 2;

/** Floats of on-chip memory a view's copy takes. */
export const copyFloats = (k: ScheduledKernel, node: number) => {
  const [rows, columns] = k.program.nodes[node].shape;
  return (rows * copyRowStride(columns)) / 2;
};

/** Floats of on-chip memory the warps' staging slices take. */
export const stagingFloats = (k: ScheduledKernel, s: Sizing) =>
  ((k.invocations / WARP_LANES) * s.warpElements * stagedBytes(s.operands)) / 4;

/** Floats of on-chip memory the staging of each product of a kernel's tensor-core plan takes. */
export const tensorCoreStagingFloats = (k: ScheduledKernel): number => stagingFloats(k, k.tensorCores!);
