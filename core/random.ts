/** Seeded random numbers: the same seed gives the same numbers on every machine and browser. */

/** xorshift32: uniform numbers in (0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** One normal sample by Box–Muller, with standard deviation `std`. */
export function normal(rand: () => number, std = 1): number {
  return std * Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand());
}
