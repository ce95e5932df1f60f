import { describe, expect, it } from 'vitest';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { compileShader, ShaderError } from '../runtime/webgpu/shader.ts';

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
});
