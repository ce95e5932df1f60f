/**
 * Stands in for the modules runtime/webgpu/device.ts loads only on its Node path (Dawn, the
 * `webgpu` package, and the SwiftShader loader): a page has navigator.gpu and never gets there,
 * and the bundle must not carry a native addon. Reaching any of this is a bug, said plainly.
 */
const nodeOnly = (): never => {
  throw new Error('a Node-only WebGPU module was reached in the browser (navigator.gpu is missing)');
};

export const create = nodeOnly;
export const globals = {};
export const findSwiftShaderIcd = nodeOnly;
export const useVulkanIcd = nodeOnly;
export const SWIFTSHADER_ICDS: string[] = [];
