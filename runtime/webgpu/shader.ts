/** Compiling WGSL with clear errors (the offending line quoted) and the compiler's warnings kept. */

export class ShaderError extends Error {}

export interface CompiledShader {
  module: GPUShaderModule;
  /** Warnings and infos Dawn reported, as `line:col: message`. */
  messages: string[];
}

export async function compileShader(device: GPUDevice, code: string, label: string): Promise<CompiledShader> {
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code, label });
  const info = await module.getCompilationInfo();
  const scopeError = await device.popErrorScope();
  const lines = code.split('\n');
  const describe = (m: GPUCompilationMessage) =>
    `${label}:${m.lineNum}:${m.linePos}: ${m.type}: ${m.message}\n  ${lines[m.lineNum - 1] ?? ''}`;
  const errors = info.messages.filter((m) => m.type === 'error');
  if (errors.length || scopeError) {
    throw new ShaderError(
      `WGSL of ${label} does not compile:\n${errors.map(describe).join('\n') || scopeError?.message}`,
    );
  }
  return { module, messages: info.messages.map(describe) };
}
