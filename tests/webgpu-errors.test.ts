import { describe, expect, it } from 'vitest';
import { webgpuManifest } from '../cli/link.ts';
import { innerLoopInputs } from '../runtime/inner-loop.ts';
import { deviceLimits, getGPUDevice } from '../runtime/webgpu/device.ts';
import { LimitError, WebGPUInnerLoop } from '../runtime/webgpu/inner-loop.ts';
import { compileShader, ShaderError } from '../runtime/webgpu/shader.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';

describe('WebGPU errors are clear', () => {
  it('a shader that does not compile is reported with its line and the line quoted', async () => {
    const { device } = await getGPUDevice();
    const code = ['@compute @workgroup_size(1)', 'fn main() {', '  let x: f32 = undefined_name + 1.0;', '}'].join('\n');
    const error = await compileShader(device, code, 'broken.wgsl').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ShaderError);
    const message = (error as Error).message;
    expect(message).toMatch(/broken\.wgsl:3:\d+: error: .*undefined_name/);
    expect(message).toContain('let x: f32 = undefined_name + 1.0;');
  });

  it('a shader that compiles reports no messages', async () => {
    const { device } = await getGPUDevice();
    const { messages } = await compileShader(device, '@compute @workgroup_size(1)\nfn main() {}\n', 'fine.wgsl');
    expect(messages).toEqual([]);
  });

  it('a call whose scratch passes the binding limit is refused with a LimitError naming the limit and the slice', async () => {
    // TTT-Linear at K = 2048 keeps a K×K matrix (16 MiB) per sequence-head in global scratch.
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 2048 });
    const context = await getGPUDevice();
    const manifest = await webgpuManifest(c, context);
    const limit = deviceLimits(context.device).maxStorageBufferBindingSize;
    const H = Math.floor(limit / (manifest.scratchFloats * 4)) + 1;
    const loop = await WebGPUInnerLoop.fromManifest(manifest, context);
    const named = randomInputs(c.chunk, { B: 1, H, T: 2, seed: 1 });
    const error = await loop.run(innerLoopInputs(c.signature, named)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LimitError);
    expect((error as Error).message).toContain(
      `buffer scratch needs ${H * manifest.scratchFloats * 4} bytes (${manifest.scratchFloats * 4} per sequence-head, ${H} of them); the adapter's maxStorageBufferBindingSize is ${limit} bytes: call with at most ${H - 1} sequence-heads at once`,
    );
  });
});
