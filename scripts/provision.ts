/**
 * `npm test`'s pretest: what the tests need beyond node_modules, on a fresh machine.
 * - dist/, the built package, for the tests that run the installed command: rebuilt when older
 *   than the sources.
 * - A Vulkan driver for the WebGPU tests: SwiftShader, the CPU driver Debian's chromium ships, is
 *   installed with apt when missing and we are root; otherwise we say what to install.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findSwiftShaderIcd, SWIFTSHADER_ICDS, systemVulkanLoader } from '../runtime/webgpu/software-vulkan.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SOURCES = ['core', 'api', 'cli', 'compiler', 'runtime', 'targets'];

function newest(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): void {
  const { status } = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (status !== 0) {
    console.error(`pretest: '${[command, ...args].join(' ')}' failed (exit ${status})`);
    process.exit(1);
  }
}

const built = join(root, 'dist/cli/main.js');
const sourcesChanged = Math.max(
  ...SOURCES.map((d) => newest(join(root, d))),
  statSync(join(root, 'package.json')).mtimeMs,
);
if (!existsSync(built) || statSync(built).mtimeMs < sourcesChanged) run(process.execPath, ['scripts/build.mjs']);

if (!process.env.VK_ICD_FILENAMES && !findSwiftShaderIcd()) {
  const asRoot = process.getuid?.() === 0;
  if (systemVulkanLoader()) {
    console.error('pretest: no SwiftShader; the WebGPU tests will use the Vulkan driver of this machine');
  } else if (asRoot && existsSync('/usr/bin/apt-get')) {
    console.error('pretest: installing chromium for SwiftShader, the CPU Vulkan driver the WebGPU tests use');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update'], env);
    run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], env);
  } else {
    console.error(
      'pretest: the WebGPU tests need a Vulkan driver and none was found. Install SwiftShader, the CPU driver\n' +
        "Chromium ships ('apt-get install chromium' as root on Debian), or set VK_ICD_FILENAMES to a driver's\n" +
        `manifest. Looked for: ${SWIFTSHADER_ICDS.join(', ')}.`,
    );
    process.exit(1);
  }
}
