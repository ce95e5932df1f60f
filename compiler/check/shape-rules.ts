/** Shape rules of the binary operators, shared by the checker's messages and later stages. */
import type { Shape } from './checked.ts';

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** `+ - * /`: equal shapes, or one side a scalar that is broadcast. */
export function elementwiseShape(a: Shape, b: Shape): Shape | undefined {
  if (a.length === 0) return b;
  if (b.length === 0 || sameShape(a, b)) return a;
  return undefined;
}

/** `@`: [m]@[m,n] -> [n], [m,n]@[n,p] -> [m,p], [m,n]@[n] -> [m], [m]@[m] -> scalar. */
export function matmulShape(a: Shape, b: Shape): Shape | undefined {
  if (a.length === 0 || b.length === 0 || a.at(-1) !== b[0]) return undefined;
  return [...a.slice(0, -1), ...b.slice(1)];
}
