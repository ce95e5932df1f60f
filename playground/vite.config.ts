import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const nodeOnly = fileURLToPath(new URL('./src/node-only.ts', import.meta.url));

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Relative URLs: the built page works from any folder, or from file-less static hosting.
  base: './',
  resolve: {
    alias: [
      { find: /^webgpu$/, replacement: nodeOnly },
      { find: /^.*\/software-vulkan\.ts$/, replacement: nodeOnly },
    ],
  },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 2048 },
  server: { fs: { allow: ['..'] } },
});
