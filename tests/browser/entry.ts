/**
 * The page side of tests/browser.test.ts, bundled by esbuild and loaded in Chromium: compiles a
 * spec and runs its WGSL inner loop through the runtime's browser path (navigator.gpu). Tensors
 * cross the page boundary as plain arrays, which Playwright serializes exactly (NaN included).
 */
import { webgpuInnerLoop } from '../../cli/link.ts';
import { formatDiagnostics } from '../../compiler/diagnostics/diagnostic.ts';
import type { Tensor } from '../../core/tensor.ts';
import { compileSpec } from '../../compiler/pipeline.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../../runtime/inner-loop.ts';
import { getGPUDevice } from '../../runtime/webgpu/device.ts';

export interface PlainTensor {
  shape: readonly number[];
  data: number[];
}

export interface BrowserRunRequest {
  file: string;
  spec: string;
  /** Dimension overrides, e.g. { D: 32, K: 8 }. */
  dims: Record<string, number>;
  inputs: Record<string, PlainTensor>;
}

export interface BrowserRunResult {
  outputs: Record<string, PlainTensor>;
  adapter: { name: string; vendor: string; architecture: string; device: string; description: string };
  /** The browser's messages about the generated WGSL (expected to be none). */
  messages: string[];
}

declare global {
  interface Window {
    runInnerLoop(request: BrowserRunRequest): Promise<BrowserRunResult>;
  }
}

window.runInnerLoop = async ({ file, spec, dims, inputs }) => {
  // Without this check a missing navigator.gpu would send getGPUDevice down its Node path, whose
  // import('webgpu') fails in a page with an unhelpful module-resolution error.
  if (!navigator.gpu)
    throw new Error(
      `navigator.gpu is undefined (secure context: ${isSecureContext}); WebGPU is disabled in this browser`,
    );
  const result = compileSpec(spec, { file, overrides: new Map(Object.entries(dims)) });
  if (!result.ok) throw new Error(formatDiagnostics(result.diagnostics, spec));
  const compiled = result.compiled;

  const ctx = await getGPUDevice();
  const loop = await webgpuInnerLoop(compiled, ctx);
  const named = new Map(
    Object.entries(inputs).map(([name, t]): [string, Tensor] => [
      name,
      { shape: t.shape, data: Float64Array.from(t.data) },
    ]),
  );
  const outputs = innerLoopOutputTensors(await loop.run(innerLoopInputs(compiled.signature, named), { poison: true }));

  const { vendor, architecture, device, description } = ctx.adapter.info;
  return {
    outputs: Object.fromEntries([...outputs].map(([name, t]) => [name, { shape: t.shape, data: Array.from(t.data) }])),
    adapter: { name: ctx.adapterName, vendor, architecture, device, description },
    messages: loop.warnings,
  };
};
