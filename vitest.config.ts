import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // WebGPU tests may run on SwiftShader, a CPU Vulkan driver, where one kernel can take seconds.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Child processes rather than worker threads: dawn.node is a native addon, and each process
    // gets its own Dawn instance. Two workers match the 2-core CI machine.
    pool: 'forks',
    maxWorkers: 2,
  },
});
