/**
 * After the inner loop, per token: heads joined (channel h·D + d of token (b, t) is
 * inner[b, h, t, d]), LayerNorm over the C channels with the biased variance of the centred
 * values (two passes, as accurate as f32 allows), and, when gated, times gelu_tanh(z) for z the
 * gate columns of the fused projection p [B·T, stride]. Writes y [B·T, C] for the output
 * projection. One workgroup per token.
 */
export const POST_NORM_THREADS = 256;

export const POST_NORM_WGSL = /* wgsl */ `
struct Params {
  T: u32,
  H: u32,
  D: u32,
  C: u32,
  stride: u32,
  gate_column: u32,
  use_gate: u32,
  rows: u32,
  eps: f32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> inner: array<f32>;
@group(0) @binding(2) var<storage, read> p: array<f32>;
@group(0) @binding(3) var<storage, read> weight: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

const THREADS: u32 = ${POST_NORM_THREADS}u;
var<workgroup> partial: array<f32, THREADS>;

fn workgroup_sum(local: u32, value: f32) -> f32 {
  partial[local] = value;
  workgroupBarrier();
  for (var stride = THREADS / 2u; stride > 0u; stride >>= 1u) {
    if (local < stride) { partial[local] += partial[local + stride]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier();
  return total;
}

fn gelu_tanh(x: f32) -> f32 {
  // tanh is ±1 in f32 beyond |u| ≈ 9; the clamp keeps a tanh built on exp from overflowing to NaN.
  let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
  return 0.5 * x * (1.0 + tanh(u));
}

@compute @workgroup_size(THREADS)
fn main(@builtin(workgroup_id) group: vec3u, @builtin(num_workgroups) groups: vec3u, @builtin(local_invocation_index) local: u32) {
  let n = group.x + group.y * groups.x;
  if (n >= params.rows) { return; }
  let t = n % params.T;
  let b = n / params.T;
  // Channel c of this token lives in head c / D.
  let base = b * params.H * params.T * params.D + t * params.D;
  let head_stride = params.T * params.D;

  var sum = 0.0;
  for (var c = local; c < params.C; c += THREADS) {
    sum += inner[base + (c / params.D) * head_stride + c % params.D];
  }
  let mean = workgroup_sum(local, sum) / f32(params.C);
  var squares = 0.0;
  for (var c = local; c < params.C; c += THREADS) {
    let centred = inner[base + (c / params.D) * head_stride + c % params.D] - mean;
    squares += centred * centred;
  }
  let inv_std = inverseSqrt(workgroup_sum(local, squares) / f32(params.C) + params.eps);
  for (var c = local; c < params.C; c += THREADS) {
    var v = (inner[base + (c / params.D) * head_stride + c % params.D] - mean) * inv_std * weight[c] + bias[c];
    if (params.use_gate != 0u) { v *= gelu_tanh(p[n * params.stride + params.gate_column + c]); }
    y[n * params.C + c] = v;
  }
}
`;
