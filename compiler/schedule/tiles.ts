/**
 * Register tiles for products: each invocation computes a rows × cols block of the result, so an
 * operand element it loads serves several outputs. Larger blocks save memory traffic, but only
 * while there are still enough blocks to keep every invocation busy.
 */
export interface Tile {
  rows: number;
  cols: number;
}

const SIDES = [4, 2, 1];

export function chooseTile(m: number, n: number, batch: number, invocations: number): Tile {
  let best: Tile = { rows: 1, cols: 1 };
  for (const rows of SIDES) {
    for (const cols of SIDES) {
      if (m % rows || n % cols) continue;
      const blocks = batch * (m / rows) * (n / cols);
      const better =
        rows * cols > best.rows * best.cols ||
        (rows * cols === best.rows * best.cols && Math.abs(rows - cols) < Math.abs(best.rows - best.cols));
      if (blocks >= invocations && better) best = { rows, cols };
    }
  }
  return best;
}
