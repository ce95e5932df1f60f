/** Shape rules of the binary operators, shared by the checker's messages and later stages. */
import type { Shape } from './checked.ts';

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/**
 * `+ - * /`: equal shapes, or the lower-rank side broadcast against the other's trailing axes
 * (a scalar against anything, a vector [n] against each row of a matrix [m, n]).
 */
export function elementwiseShape(a: Shape, b: Shape): Shape | undefined {
  const [low, high] = a.length <= b.length ? [a, b] : [b, a];
  return sameShape(low, high.slice(high.length - low.length)) ? high : undefined;
}

/** `@`: [m]@[m,n] -> [n], [m,n]@[n,p] -> [m,p], [m,n]@[n] -> [m], [m]@[m] -> scalar. */
export function matmulShape(a: Shape, b: Shape): Shape | undefined {
  if (a.length === 0 || b.length === 0 || a.at(-1) !== b[0]) return undefined;
  return [...a.slice(0, -1), ...b.slice(1)];
}
