// `npm run build`: the package in dist/. esbuild bundles the three entry points (the compiler API,
// the runtime, the CLI) with chevrotain inside and the per-command and per-target code split into
// chunks loaded on demand, so `tttc check` reads a few files instead of hundreds; tsc writes the
// declarations. npm runs it on install (prepare) and before packing.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true });

await build({
  absWorkingDir: root,
  entryPoints: ['api/index.ts', 'runtime/index.ts', 'runtime/cuda-cpu/index.ts', 'cli/main.ts'],
  outdir: 'dist',
  outbase: '.',
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Optional peers, loaded only when used: Dawn for WebGPU in Node, the toolchain of the ts target.
  external: ['webgpu', 'ts-morph', 'prettier'],
  logLevel: 'warning',
});

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const { status } = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
process.exit(status ?? 1);
