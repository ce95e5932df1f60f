// Node-only: points Dawn's Vulkan backend at SwiftShader, the CPU Vulkan driver that Chromium
// ships, so machines without a GPU (CI, containers) can still run the WGSL kernels.

import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';

/** Where browser packages install SwiftShader's Vulkan ICD manifest. */
export const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json', // Debian `chromium`
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json', // older Ubuntu `chromium-browser`
  '/snap/chromium/current/usr/lib/chromium-browser/vk_swiftshader_icd.json', // Ubuntu snap
  '/opt/google/chrome/vk_swiftshader_icd.json', // Google Chrome
];

// glibc's and musl's value; Node's os.constants.dlopen does not export it.
const RTLD_NODELETE = 0x1000;

export function findSwiftShaderIcd(): string | undefined {
  return SWIFTSHADER_ICDS.find((path) => existsSync(path));
}

/** Whether the system's Vulkan loader (libvulkan.so.1) can be loaded; elsewhere than Linux, assume so. */
export function systemVulkanLoader(): boolean {
  if (process.platform !== 'linux') return true;
  try {
    // Loads it (Dawn would load it next anyway) and then throws: it is no Node addon.
    process.dlopen({ exports: {} }, 'libvulkan.so.1', constants.dlopen.RTLD_NOW | RTLD_NODELETE);
  } catch (error) {
    return (error as Error).message.includes('did not self-register');
  }
  return true;
}

/**
 * Makes the next Dawn instance see only the given ICD (driver manifest). The Vulkan loader reads VK_ICD_FILENAMES
 * from the environment each time an instance is created, so setting it in-process works.
 *
 * Chromium bundles its own Vulkan loader (libvulkan.so.1) beside the ICD, and Debian's chromium
 * does not pull in the system one (libvulkan1). Dawn dlopen()s "libvulkan.so.1" by name; glibc
 * answers that with an already loaded library of the same soname, and LD_LIBRARY_PATH cannot be
 * changed after start-up, so we load Chromium's copy into the process first.
 */
export function useVulkanIcd(icdPath: string): void {
  process.env.VK_ICD_FILENAMES = icdPath;
  const loader = join(dirname(icdPath), 'libvulkan.so.1');
  if (process.platform !== 'linux' || !existsSync(loader)) return;
  try {
    // process.dlopen is for Node addons: it loads the library, finds no addon in it, throws, and
    // dlclose()s it. RTLD_NODELETE keeps it loaded through that dlclose.
    process.dlopen({ exports: {} }, loader, constants.dlopen.RTLD_NOW | RTLD_NODELETE);
  } catch (error) {
    const message = (error as Error).message;
    if (!message.includes('did not self-register')) {
      throw new Error(`Could not load the Vulkan loader ${loader}: ${message}`);
    }
  }
}
