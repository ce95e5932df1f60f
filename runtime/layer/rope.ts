/**
 * The rotary position table, as the published layer builds it. Positions are t mod K, so the
 * table is only [K, D/2]; every backend reads the same table and none evaluates sin or cos.
 *
 * The published code computes the frequencies, the angles and their cos and sin in float32, even
 * in a float64 model, so the table holds float32 values here too (an f64 table would differ from
 * it by ~1e-8). Ours are correctly rounded; PyTorch's CPU float32 sin and cos are not always
 * (about one value in ten is one float32 step away), which bounds how closely an f64 layer can
 * agree with the reference vectors: about 1e-8 relative, not 1e-15.
 *
 * Channel pairing: the code permutes each head's channels to [0, 2, 4, …, 1, 3, 5, …], applies
 * rotate-half RoPE (channel j with j + D/2 at frequency j) and permutes back; that is rotating
 * the adjacent pair (2m, 2m+1) by angle p·f_m, which is what `applyRope` does.
 */
export interface RopeTable {
  /** [K, D/2]: cos and sin of position p (row) times frequency m (column). */
  cos: Float64Array;
  sin: Float64Array;
  half: number;
}

const f32 = Math.fround;

export function ropeTable(headDim: number, miniBatch: number, theta: number): RopeTable {
  if (headDim % 2 !== 0) throw new Error(`RoPE needs an even head dim, got D = ${headDim}`);
  const half = headDim / 2;
  const cos = new Float64Array(miniBatch * half);
  const sin = new Float64Array(miniBatch * half);
  for (let m = 0; m < half; m++) {
    // inv_freq = 1 / theta^(2m / D), each step rounded to float32 as torch does.
    const invFreq = f32(1 / f32(Math.pow(f32(theta), f32((2 * m) / headDim))));
    for (let p = 0; p < miniBatch; p++) {
      const angle = f32(invFreq * p);
      cos[p * half + m] = f32(Math.cos(angle));
      sin[p * half + m] = f32(Math.sin(angle));
    }
  }
  return { cos, sin, half };
}

/** Rotates one head-vector `v` (length D, at `offset`) in place for mini-batch position `p`. */
export function applyRope(table: RopeTable, v: Float64Array, offset: number, p: number): void {
  const row = p * table.half;
  for (let m = 0; m < table.half; m++) {
    const c = table.cos[row + m];
    const s = table.sin[row + m];
    const a = v[offset + 2 * m];
    const b = v[offset + 2 * m + 1];
    v[offset + 2 * m] = a * c - b * s;
    v[offset + 2 * m + 1] = b * c + a * s;
  }
}
