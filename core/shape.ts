/** Shapes of dense row-major tensors: the vocabulary every stage, the runtime included, shares. */
export type Shape = readonly number[];

export const size = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);
export const sameShape = (a: Shape, b: Shape): boolean => a.length === b.length && a.every((d, i) => d === b[i]);
export const showShape = (s: Shape): string => `[${s.join(', ')}]`;
