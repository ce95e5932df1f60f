/**
 * The mini-batch walk: how a call of T tokens starting at position `start` of a mini-batch of K
 * is cut into chunks of at most `rows` tokens that never cross a mini-batch boundary. The
 * reference executor and the runtime take their chunks from here; generated kernels walk the same
 * recurrence (targets/clike/kernel.ts: count, ends, then position advances modulo K).
 */

/**
 * One chunk: `count` tokens from token `token` on, at mini-batch positions
 * [position, position + count), in the first `count` rows of the mini-batch program.
 */
export interface Chunk {
  token: number;
  position: number;
  count: number;
  /** The chunk reaches the mini-batch's last row, so the state commits after it. */
  ends: boolean;
}

export function chunks(start: number, T: number, K: number, rows: number): Chunk[] {
  const out: Chunk[] = [];
  let position = start;
  for (let token = 0; token < T;) {
    const count = Math.min(rows, K - position, T - token);
    out.push({ token, position, count, ends: position + count === K });
    token += count;
    position = (position + count) % K;
  }
  return out;
}
