/**
 * The stages that compute a product on tensor cores (schedule/tensor-cores.ts chose it), each
 * lowered by ./mma.ts with an epilogue of its own on every accumulator element: a buffered
 * product's stage stores the element, and the update stage of a state whose gradient product is
 * there (ScheduledKernel.updateProducts) updates the state's element from it in registers: the
 * warps take the state's tiles, and no loop of FFMAs sums the product element by element.
 */
import type { ScheduledKernel } from '../schedule/kernel.ts';
import { type Expr, type Stmt, constant } from './ir.ts';
import { type CopiedOperand, lowerTensorCoreProduct } from './mma.ts';
import { copiedOperand } from '../schedule/tensor-cores.ts';
import { type DimNames, Index } from './tensor-index.ts';
import type { Values } from './values.ts';

/** What the lowering of a tensor-core stage reads of its kernel. */
export interface TensorCoreContext {
  k: ScheduledKernel;
  values: Values;
  names: DimNames;
  /** Names the values a group of statements reads more than once. */
  shared(group: Stmt[]): Stmt[];
  /** When the product is zero unless a condition holds (one that reads an accumulator), that condition. */
  live(id: number): Expr | undefined;
}

/** The name under which an update stage reads its product's element (`product<id>`). */
export const updateProductName = (id: number): string => `product${id}`;

/** Product `id` on tensor cores, `epilogue` taking each element of the result at its index. */
export function product(c: TensorCoreContext, id: number, epilogue: (at: Index, value: Expr) => Stmt[]): Stmt {
  const n = c.k.program.nodes[id];
  const [a, b] = n.args.map((x) => c.k.program.nodes[x]);
  const copy = (role: 'a' | 'b'): CopiedOperand | undefined => {
    const operand = copiedOperand(c.k, id, role);
    const at = operand && c.k.tensorCores!.copies?.get(operand.node);
    return at && { start: at.offset * 2, rowStride: at.rowStride, transposed: operand.transposed };
  };
  return lowerTensorCoreProduct(c.k.tensorCores!, c.k.invocations, {
    copyA: copy('a'),
    copyB: copy('b'),
    shape: n.shape,
    contraction: a.shape[a.shape.length - 1],
    staging: c.k.tensorCores!.products.get(id)!,
    a: (batch, row, p) => c.values.value(a.id, Index.dims(a.shape, [...batch, row, p], c.names)),
    b: (batch, p, col) => c.values.value(b.id, Index.dims(b.shape, [...batch, p, col], c.names)),
    epilogue: (batch, row, col, value) => epilogue(Index.dims(n.shape, [...batch, row, col], c.names), value),
    shared: (group) => c.shared(group),
    live: c.live(id),
  });
}

/** The product the update of `state` computes on tensor cores, if it has one there. */
export function updateProduct(k: ScheduledKernel, state: string): number | undefined {
  for (const [id, of] of k.updateProducts ?? []) if (of === state && k.tensorCores?.products.has(id)) return id;
  return undefined;
}

/**
 * A state's update with its product `id` on tensor cores: each warp takes tiles of the product
 * (the state's shape), and on each accumulator element, named as the update reads it, runs the
 * update of the state's element there (`element`: its new state, accumulator and optimizer state,
 * each written to its home), so the state is updated in place from the accumulator.
 */
export function update(c: TensorCoreContext, id: number, element: (at: Index) => Stmt[]): Stmt {
  return product(c, id, (at, value) => [constant(updateProductName(id), 'float', value), ...element(at)]);
}
