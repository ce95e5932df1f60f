// These tests never skip: a machine without a WebGPU adapter fails them, with getGPUDevice's
// message saying what to install (CI installs SwiftShader through chromium).
import { describe, expect, it } from 'vitest';
import { deviceLimits, getGPUDevice } from '../runtime/webgpu/device.ts';

const ADD_SHADER = /* wgsl */ `
  @group(0) @binding(0) var<storage, read> a: array<f32>;
  @group(0) @binding(1) var<storage, read> b: array<f32>;
  @group(0) @binding(2) var<storage, read_write> sum: array<f32>;

  @compute @workgroup_size(64)
  fn main(@builtin(global_invocation_id) id: vec3u) {
    if (id.x < arrayLength(&sum)) {
      sum[id.x] = a[id.x] + b[id.x];
    }
  }
`;

function storageBuffer(device: GPUDevice, data: Float32Array): GPUBuffer {
  const buffer = device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.STORAGE, mappedAtCreation: true });
  new Float32Array(buffer.getMappedRange()).set(data);
  buffer.unmap();
  return buffer;
}

describe('WebGPU device', () => {
  it('creates one device per process with the adapter limits', async () => {
    const started = performance.now();
    const context = await getGPUDevice();
    console.log(`WebGPU adapter: ${context.adapterName} (device in ${(performance.now() - started).toFixed(0)} ms)`);
    expect(context.adapterName).not.toBe('');
    expect(await getGPUDevice()).toBe(context);

    const limits = deviceLimits(context.device);
    for (const [name, value] of Object.entries(limits)) {
      expect(value, name).toBe(context.adapter.limits[name as keyof typeof limits]);
    }
  });

  it('runs a compute shader that adds two arrays', async () => {
    const { device } = await getGPUDevice();
    const n = 1000; // not a multiple of the workgroup size, to exercise the bounds check
    const a = Float32Array.from({ length: n }, (_, i) => i);
    const b = Float32Array.from({ length: n }, (_, i) => 0.5 * i - 3);

    const sum = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const readback = device.createBuffer({ size: n * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const pipeline = device.createComputePipeline({
      layout: 'auto',
      compute: { module: device.createShaderModule({ code: ADD_SHADER }), entryPoint: 'main' },
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [storageBuffer(device, a), storageBuffer(device, b), sum].map((buffer, binding) => ({
        binding,
        resource: { buffer },
      })),
    });

    device.pushErrorScope('validation');
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(Math.ceil(n / 64));
    pass.end();
    encoder.copyBufferToBuffer(sum, 0, readback, 0, n * 4);
    device.queue.submit([encoder.finish()]);
    expect(await device.popErrorScope()).toBeNull();

    await readback.mapAsync(GPUMapMode.READ);
    const result = new Float32Array(readback.getMappedRange().slice(0));
    readback.unmap();
    expect(result).toEqual(Float32Array.from({ length: n }, (_, i) => a[i]! + b[i]!));
  });
});
