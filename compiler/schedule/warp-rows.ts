/**
 * Rows to warps: a stage whose element in row i (its result's first axis) reads only row i of the
 * buffers it reads can have its rows owned by warps, so that where the buffer's rows belong to the
 * same warps, the lanes of one warp are all that exchange data: a warp barrier orders them and the
 * workgroup barrier between the two stages goes (barriers.ts decides, per address range).
 *
 * Whether a read keeps the row is followed through the inlined nodes between the stage and the
 * buffer (elementwise ops, broadcasts, reshapes and transposes that keep or move the axis). Stages
 * take warp rows where at least one such read links them to another stage that can take them, and
 * only where giving rows to warps costs a lane at most one more step than spreading the elements
 * over every invocation (a stage of fewer rows than warps leaves some warps idle).
 */
import { type Program, size } from '../ir/ir.ts';
import type { Stage, WarpRows } from './kernel.ts';
import { stageRoots } from './reads.ts';
import { chooseTile } from './tiles.ts';

/**
 * For each node a stage reads (buffered nodes, and the program inputs it reads inline), whether
 * row i of the stage's result reads only row i of it. A node read along several paths is aligned
 * only if every path keeps the row.
 */
export function rowReads(s: Stage, p: Program, isBuffered: (id: number) => boolean): Map<number, boolean> {
  const out = new Map<number, boolean>();
  const seen = new Set<string>();
  // (node, axis): the axis of the node that carries the stage's row; null where the read does not follow it.
  const pending: [number, number | null][] = [];
  const visitArgs = (id: number, axis: number | null) => {
    const n = p.nodes[id];
    const op = n.op;
    switch (op.kind) {
      case 'unary':
      case 'binary':
        for (const a of n.args) pending.push([a, axis]);
        return;
      case 'expand': {
        const from = p.nodes[n.args[0]].shape;
        const at = axis === null ? -1 : axis - (n.shape.length - from.length);
        pending.push([n.args[0], at >= 0 && from[at] === n.shape[axis!] ? at : null]);
        return;
      }
      case 'reshape': {
        const from = p.nodes[n.args[0]].shape;
        pending.push([n.args[0], axis === 0 && from[0] === n.shape[0] ? 0 : null]);
        return;
      }
      case 'transpose':
        pending.push([n.args[0], axis === null ? null : op.perm[axis]]);
        return;
      case 'matmul': {
        const r = n.shape.length;
        // A batch axis is both operands'; the row axis is A's alone (B is read whole).
        const batch = axis !== null && axis < r - 2;
        pending.push([n.args[0], batch || axis === r - 2 ? axis : null]);
        pending.push([n.args[1], batch || axis === r - 1 ? axis : null]);
        return;
      }
      case 'sum': {
        const x = p.nodes[n.args[0]].shape;
        const kept = x.map((_, i) => i).filter((i) => !op.axes.includes(i));
        pending.push([n.args[0], axis === null ? null : kept[axis]]);
        return;
      }
      default:
        return;
    }
  };
  const roots = stageRoots(s, p);
  // A compute stage computes its node from its operands; the others evaluate their roots at row i.
  if (s.kind === 'compute') visitArgs(s.node, 0);
  else for (const r of roots) pending.push([r, 0]);
  while (pending.length > 0) {
    const [id, axis] = pending.pop()!;
    const key = `${id}:${axis}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const n = p.nodes[id];
    if (isBuffered(id) || n.op.kind === 'input') {
      out.set(id, (out.get(id) ?? true) && axis === 0);
      continue;
    }
    visitArgs(id, axis);
  }
  return out;
}

/** The node a stage's rows are those of: its result, its output rows, or its state. */
function rowsNode(s: Stage): number | undefined {
  if (s.kind === 'compute' || s.kind === 'output') return s.node;
  if (s.kind === 'update') return s.stateNode;
  return undefined;
}

const ceil = (a: number, b: number) => Math.ceil(a / b);

/** The warp rows a stage can take (undefined where it cannot, or where they cost too much). */
function candidate(
  s: Stage,
  p: Program,
  invocations: number,
  lanes: number,
  onTensorCores: ReadonlySet<number>,
): WarpRows | undefined {
  const id = rowsNode(s);
  if (id === undefined || onTensorCores.has(id)) return undefined;
  const n = p.nodes[id];
  if (n.shape.length === 0 || size(n.shape) === 0) return undefined;
  const warps = invocations / lanes;
  const rows = n.shape[0];
  const rowsPerWarp = ceil(rows, warps);
  const rowElements = size(n.shape) / rows;
  const spread = ceil(size(n.shape), invocations);
  if (s.kind === 'compute' && n.op.kind === 'matmul') {
    // Rank-2 products only, whose warps all take the same number of rows (a tile divides them).
    if (n.shape.length !== 2 || rows % rowsPerWarp !== 0) return undefined;
    const tile = chooseTile(rowsPerWarp, rowElements, 1, lanes);
    const spreadTile = chooseTile(rows, rowElements, 1, invocations);
    const cost = (m: number, t: typeof tile, width: number) =>
      ceil((m / t.rows) * (rowElements / t.cols), width) * t.rows * t.cols;
    if (cost(rowsPerWarp, tile, lanes) > cost(rows, spreadTile, invocations) + 1) return undefined;
    return { rows, rowsPerWarp, rowElements, warps, lanes, tile };
  }
  if (ceil(rowsPerWarp * rowElements, lanes) > spread + 1) return undefined;
  return { rows, rowsPerWarp, rowElements, warps, lanes };
}

/**
 * The stages whose rows warps own: those that can, linked by a row-keeping read to another that
 * can. `onTensorCores`: the nodes whose stages warps compute on tensor-core tiles (a product, or
 * the state of an update whose product is there), which own no rows.
 */
export function chooseWarpRows(
  p: Program,
  stages: readonly Stage[],
  isBuffered: (id: number) => boolean,
  invocations: number,
  lanes: number | undefined,
  onTensorCores: ReadonlySet<number> = new Set(),
): Map<number, WarpRows> {
  const out = new Map<number, WarpRows>();
  if (!lanes || invocations % lanes !== 0 || invocations / lanes < 2) return out;
  const candidates = stages.map((s) => candidate(s, p, invocations, lanes, onTensorCores));
  const stageOf = new Map<number, number>();
  stages.forEach((s, i) => {
    if (s.kind === 'compute') stageOf.set(s.node, i);
  });
  stages.forEach((s, i) => {
    if (!candidates[i]) return;
    for (const [id, aligned] of rowReads(s, p, isBuffered)) {
      const j = stageOf.get(id);
      if (!aligned || j === undefined || !candidates[j]) continue;
      out.set(i, candidates[i]);
      out.set(j, candidates[j]);
    }
  });
  return out;
}
