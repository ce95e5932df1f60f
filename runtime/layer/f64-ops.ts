/** The layer's own arithmetic in float64 on the CPU: the reference the WebGPU kernels are held to. */

/** y = x Wᵀ for x [rows, n] and W [m, n] (`nn.Linear` layout): y [rows, m]. */
export function linear(x: Float64Array, rows: number, w: Float64Array, m: number): Float64Array {
  const n = w.length / m;
  const y = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++) {
    const xr = r * n;
    for (let o = 0; o < m; o++) {
      const wo = o * n;
      let acc = 0;
      for (let i = 0; i < n; i++) acc += x[xr + i] * w[wo + i];
      y[r * m + o] = acc;
    }
  }
  return y;
}

/** [B, T, H·D] → [B, H, T, D]. */
export function splitHeads(x: Float64Array, B: number, T: number, H: number, D: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let h = 0; h < H; h++)
        out.set(x.subarray(((b * T + t) * H + h) * D, ((b * T + t) * H + h + 1) * D), ((b * H + h) * T + t) * D);
  return out;
}

/** [B, H, T, D] → [B, T, H·D]. */
export function joinHeads(x: Float64Array, B: number, T: number, H: number, D: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let t = 0; t < T; t++)
        out.set(x.subarray(((b * H + h) * T + t) * D, ((b * H + h) * T + t + 1) * D), ((b * T + t) * H + h) * D);
  return out;
}

/** LayerNorm of each row of x [rows, n] in place: biased variance, as torch.nn.LayerNorm. */
export function layerNormRows(x: Float64Array, n: number, weight: Float64Array, bias: Float64Array, eps: number): void {
  for (let r = 0; r < x.length / n; r++) {
    const row = x.subarray(r * n, (r + 1) * n);
    let mean = 0;
    for (let i = 0; i < n; i++) mean += row[i];
    mean /= n;
    let variance = 0;
    for (let i = 0; i < n; i++) variance += (row[i] - mean) ** 2;
    variance /= n;
    const inv = 1 / Math.sqrt(variance + eps);
    for (let i = 0; i < n; i++) row[i] = (row[i] - mean) * inv * weight[i] + bias[i];
  }
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
}

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}
