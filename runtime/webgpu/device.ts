/// <reference types="@webgpu/types" preserve="true" />
// One WebGPU device per process: navigator.gpu in a browser, Dawn (the `webgpu` package) in Node,
// falling back to the SwiftShader CPU driver when Node finds no GPU.

export interface GPUContext {
  device: GPUDevice;
  adapter: GPUAdapter;
  /** Human-readable adapter, e.g. "SwiftShader driver 5.0.0"; worth printing next to timings. */
  adapterName: string;
  /**
   * Lanes per row sum for kernels with a subgroup variant (core/manifest.ts WgslSource); 0 runs
   * every kernel's portable code. A copy of the context with another value changes what the
   * kernels built from it use (0 turns subgroups off; a width above the adapter's subgroups makes
   * the kernels' own check fall back to one lane per row).
   */
  subgroupWidth: number;
}

export interface GPUDeviceOptions {
  /** Only the first call's options matter: the device is created once and cached. */
  powerPreference?: GPUPowerPreference;
  /** Whether kernels may use subgroups where the adapter has them (default true). */
  subgroups?: boolean;
}

/** The widest row sum a subgroup variant splits (core/manifest.ts SUBGROUP_WIDTH). */
const MAX_SUBGROUP_WIDTH = 32;

/** The largest power of two at most the adapter's smallest subgroup and 32; 0 without subgroups. */
export function subgroupWidthOf(adapter: GPUAdapter): number {
  const smallest = (adapter.info as GPUAdapterInfo & { subgroupMinSize?: number }).subgroupMinSize;
  if (!adapter.features.has('subgroups') || !smallest || smallest < 1) return 0;
  return Math.min(MAX_SUBGROUP_WIDTH, 2 ** Math.floor(Math.log2(smallest)));
}

/**
 * The limits kernels size themselves against. WebGPU grants only the spec's defaults unless the
 * device asks for more, so we ask for everything the adapter has. The per-axis workgroup sizes
 * come along so that a large maxComputeInvocationsPerWorkgroup is actually usable.
 */
const KERNEL_LIMITS = [
  'maxComputeWorkgroupStorageSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxStorageBufferBindingSize',
  'maxBufferSize',
] as const;

export type KernelLimits = Record<(typeof KERNEL_LIMITS)[number], number>;

let cached: Promise<GPUContext> | undefined;
// dawn.node tears its instance down once the object create() returned is collected, so the
// instance behind the cached device is kept alive here.
let dawnInstance: GPU | undefined;

export function getGPUDevice(options: GPUDeviceOptions = {}): Promise<GPUContext> {
  cached ??= createContext(options).catch((error: unknown) => {
    cached = undefined; // let a later call retry, e.g. after the driver is installed
    throw error;
  });
  return cached;
}

export function deviceLimits(device: GPUDevice): KernelLimits {
  return Object.fromEntries(KERNEL_LIMITS.map((name) => [name, device.limits[name]])) as KernelLimits;
}

async function createContext(options: GPUDeviceOptions): Promise<GPUContext> {
  const adapter = await requestAdapter({ powerPreference: options.powerPreference });
  const requiredLimits = Object.fromEntries(KERNEL_LIMITS.map((name) => [name, adapter.limits[name]]));
  const subgroupWidth = options.subgroups === false ? 0 : subgroupWidthOf(adapter);
  const requiredFeatures: GPUFeatureName[] = subgroupWidth ? ['subgroups' as GPUFeatureName] : [];
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const context = { device, adapter, adapterName: describeAdapter(adapter.info), subgroupWidth };
  // A lost or destroyed device is useless; the next call makes a fresh one. (Only the cached
  // device can be lost here: a new one is created only after the cache was cleared.)
  void device.lost.then(() => {
    cached = undefined;
  });
  return context;
}

async function requestAdapter(options: GPURequestAdapterOptions): Promise<GPUAdapter> {
  const browserGPU = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (browserGPU) {
    const adapter = await browserGPU.requestAdapter(options);
    if (!adapter) {
      throw new Error(
        'This browser exposes WebGPU but returned no adapter (is WebGPU disabled or the GPU blocklisted?)',
      );
    }
    return adapter;
  }
  return requestNodeAdapter(options);
}

/** Dawn, the `webgpu` package: an optional dependency, loaded only in Node and only when a device is asked for. */
async function loadDawn(): Promise<typeof import('webgpu')> {
  if (typeof process === 'undefined' || !process.versions?.node)
    throw new Error('No WebGPU: this environment has neither navigator.gpu nor Node (for Dawn, the `webgpu` package)');
  // A name in a variable: browser bundlers must not try to resolve a Node-only package.
  const dawn = 'webgpu';
  try {
    return (await import(/* @vite-ignore */ dawn)) as typeof import('webgpu');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new Error('WebGPU in Node needs Dawn: `npm install webgpu` (an optional peer dependency of tttc)');
  }
}

async function requestNodeAdapter(options: GPURequestAdapterOptions): Promise<GPUAdapter> {
  const { create, globals } = await loadDawn();
  // Kernel code uses the WebGPU enums (GPUBufferUsage, GPUMapMode, ...) as globals, as in a browser.
  Object.assign(globalThis, globals);
  const { findSwiftShaderIcd, systemVulkanLoader, useVulkanIcd, SWIFTSHADER_ICDS } =
    await import('./software-vulkan.ts');

  // Without a system Vulkan loader Dawn's first try finds nothing and prints a warning with a
  // source line: go to SwiftShader directly instead (unless the user chose a driver).
  const direct = !process.env.VK_ICD_FILENAMES && !systemVulkanLoader() ? findSwiftShaderIcd() : undefined;
  if (direct) useVulkanIcd(direct);
  dawnInstance = create([]);
  const adapter = await dawnInstance.requestAdapter(options);
  if (adapter) return adapter;

  // Retry with the user's VK_ICD_FILENAMES if set (it may name Chromium's SwiftShader, whose
  // loader we must still provide), else with SwiftShader if installed.
  const userIcd = process.env.VK_ICD_FILENAMES;
  const icd = userIcd || findSwiftShaderIcd();
  if (icd) {
    useVulkanIcd(icd);
    dawnInstance = create([]);
    const retried = await dawnInstance.requestAdapter(options);
    if (retried) return retried;
  }
  throw new Error(
    'No WebGPU adapter: Dawn (the `webgpu` package) found no usable Vulkan driver' +
      (icd ? ` (VK_ICD_FILENAMES=${icd}${userIcd ? ', set by the user' : ''})` : '') +
      '. Install a GPU driver with Vulkan support (and the Vulkan loader: `apt-get install libvulkan1`),' +
      ' or, for a CPU fallback, `apt-get install chromium` on Debian, which ships SwiftShader' +
      ` (looked for: ${SWIFTSHADER_ICDS.join(', ')}).`,
  );
}

function describeAdapter(info: GPUAdapterInfo): string {
  return (
    info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(' ') || 'unknown adapter'
  );
}
