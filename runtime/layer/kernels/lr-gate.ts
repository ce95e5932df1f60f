/**
 * A per-token gate [B, H, T] = scale · σ(z + c_h), z the gate's columns of the fused projection
 * p [B·T, stride]: the inner learning rate (scale base_lr / D) and an update rule's per-token
 * inputs (runtime/layer/rule-gates.ts). One thread per (token, head).
 */
export const LR_GATE_WGSL = /* wgsl */ `
struct Params {
  T: u32,
  H: u32,
  stride: u32,
  column: u32,
  count: u32,
  scale: f32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> p: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> lr: array<f32>;

// exp of a non-positive number cannot overflow, whichever the sign of x.
fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = id.x + id.y * groups.x * 64u;
  if (i >= params.count) { return; }
  let h = i % params.H;
  let n = i / params.H;
  let t = n % params.T;
  let b = n / params.T;
  lr[(b * params.H + h) * params.T + t] = params.scale * sigmoid(p[n * params.stride + params.column + h] + bias[h]);
}
`;
