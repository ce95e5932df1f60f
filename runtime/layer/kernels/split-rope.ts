/**
 * One view out of the fused projection: columns [column, column + H·D) of p [B·T, stride] into
 * [B, H, T, D], heads split. For q and k (`rotate`), each channel pair (2m, 2m+1) is rotated by
 * the angle of the token's mini-batch position (t + offset) mod K, read from the rotary table
 * the CPU built (rope.ts), so the device evaluates no sin or cos. One thread per channel pair.
 */
export const SPLIT_ROPE_WGSL = /* wgsl */ `
struct Params {
  T: u32,
  H: u32,
  D: u32,
  stride: u32,
  column: u32,
  rotate: u32,
  offset: u32,
  K: u32,
  pairs: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> cos_table: array<f32>;
@group(0) @binding(3) var<storage, read> sin_table: array<f32>;
@group(0) @binding(4) var<storage, read_write> view: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = id.x + id.y * groups.x * 64u;
  if (i >= params.pairs) { return; }
  let half = params.D / 2u;
  let m = i % half;
  let rest = i / half;
  let h = rest % params.H;
  let n = rest / params.H;
  let t = n % params.T;
  let b = n / params.T;
  let src = n * params.stride + params.column + h * params.D + 2u * m;
  var even = p[src];
  var odd = p[src + 1u];
  if (params.rotate != 0u) {
    let at = ((t + params.offset) % params.K) * half + m;
    let c = cos_table[at];
    let s = sin_table[at];
    let rotated = vec2f(even * c - odd * s, odd * c + even * s);
    even = rotated.x;
    odd = rotated.y;
  }
  let dst = ((b * params.H + h) * params.T + t) * params.D + 2u * m;
  view[dst] = even;
  view[dst + 1u] = odd;
}
`;
