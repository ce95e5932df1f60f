/**
 * y = x Wᵀ in f32 for the layer's projections: x [rows, inner], W [cols, inner] (`nn.Linear`
 * layout, so both operands are read along their contiguous inner axis), y [rows, cols].
 *
 * Prefill uses the tiled kernel: a workgroup computes a TILE_ROWS × TILE_COLS tile of y, walking
 * the inner axis DEPTH at a time through workgroup memory; each thread owns ROWS rows × COLS
 * columns of the tile as named vec4 accumulators. The body is unrolled here rather than written
 * as loops over arrays because compilers that cannot prove an array index constant (SwiftShader
 * among them) keep such arrays in memory, which made the kernel several times slower.
 *
 * Decode has a handful of rows, where a 128-row tile would be almost all padding; the skinny
 * kernel gives each output its own thread instead.
 */

/** Threads per workgroup along columns (x) and rows (y). */
const THREADS_X = 8;
const THREADS_Y = 16;
/** Rows and vec4 column groups per thread. */
const ROWS = 8;
const COL_GROUPS = 2;
const DEPTH = 16;

export const MATMUL_TILE_ROWS = THREADS_Y * ROWS;
export const MATMUL_TILE_COLS = THREADS_X * 4 * COL_GROUPS;
/** Up to this many rows the skinny kernel is used. */
export const SKINNY_MAX_ROWS = 8;
export const SKINNY_GROUP = 64;

const THREADS = THREADS_X * THREADS_Y;
const TR = MATMUL_TILE_ROWS;
const TC = MATMUL_TILE_COLS;

const DIMS = `struct Dims {
  rows: u32,
  cols: u32,
  inner: u32,
  pad: u32,
}

@group(0) @binding(0) var<uniform> dims: Dims;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;`;

function tiledKernel(): string {
  const rows = [...Array(ROWS).keys()];
  const groups = [...Array(COL_GROUPS).keys()];
  const each = (f: (i: number, j: number) => string) => rows.flatMap((i) => groups.map((j) => f(i, j)));
  return /* wgsl */ `${DIMS}

// One depth step of the tile's rows of x and of W, depth-major so a thread reads its rows of x
// as scalars and its columns of W as vec4s.
var<workgroup> x_tile: array<f32, ${TR * DEPTH}>;
var<workgroup> w_tile: array<vec4f, ${(TC * DEPTH) / 4}>;

fn store(r: u32, c: u32, v: vec4f) {
  if (r >= dims.rows) { return; }
  for (var j = 0u; j < 4u; j++) {
    if (c + j < dims.cols) { y[r * dims.cols + c + j] = v[j]; }
  }
}

@compute @workgroup_size(${THREADS_X}, ${THREADS_Y})
fn main(@builtin(workgroup_id) group: vec3u, @builtin(local_invocation_id) local: vec3u, @builtin(local_invocation_index) index: u32) {
  let row0 = group.y * ${TR}u;
  let col0 = group.x * ${TC}u;
  ${each((i, j) => `var acc_${i}_${j} = vec4f(0.0);`).join('\n  ')}
  for (var k0 = 0u; k0 < dims.inner; k0 += ${DEPTH}u) {
    // Consecutive threads load consecutive inner-axis words of a row: coalesced reads.
    for (var e = index; e < ${TR * DEPTH}u; e += ${THREADS}u) {
      let r = e / ${DEPTH}u;
      let k = k0 + e % ${DEPTH}u;
      var v = 0.0;
      if (k < dims.inner && row0 + r < dims.rows) { v = x[(row0 + r) * dims.inner + k]; }
      x_tile[(e % ${DEPTH}u) * ${TR}u + r] = v;
    }
    for (var e = index; e < ${TC * DEPTH}u; e += ${THREADS}u) {
      let c = e / ${DEPTH}u;
      let k = k0 + e % ${DEPTH}u;
      var v = 0.0;
      if (k < dims.inner && col0 + c < dims.cols) { v = w[(col0 + c) * dims.inner + k]; }
      w_tile[(e % ${DEPTH}u) * ${TC / 4}u + c / 4u][c % 4u] = v;
    }
    workgroupBarrier();
    for (var d = 0u; d < ${DEPTH}u; d++) {
      ${groups.map((j) => `let w_${j} = w_tile[d * ${TC / 4}u + ${j * THREADS_X}u + local.x];`).join('\n      ')}
      ${rows.map((i) => `let x_${i} = x_tile[d * ${TR}u + local.y + ${i * THREADS_Y}u];`).join('\n      ')}
      ${each((i, j) => `acc_${i}_${j} += x_${i} * w_${j};`).join('\n      ')}
    }
    workgroupBarrier();
  }
  ${each((i, j) => `store(row0 + local.y + ${i * THREADS_Y}u, col0 + ${j * THREADS_X * 4}u + local.x * 4u, acc_${i}_${j});`).join('\n  ')}
}
`;
}

export const MATMUL_WGSL = tiledKernel();

export const MATMUL_SKINNY_WGSL = /* wgsl */ `${DIMS}

@compute @workgroup_size(${SKINNY_GROUP})
fn main(@builtin(global_invocation_id) id: vec3u) {
  let c = id.x;
  let r = id.y;
  if (c >= dims.cols || r >= dims.rows) { return; }
  var acc = 0.0;
  for (var k = 0u; k < dims.inner; k++) {
    acc = fma(x[r * dims.inner + k], w[c * dims.inner + k], acc);
  }
  y[r * dims.cols + c] = acc;
}
`;
