/**
 * `npm test`'s pretest: what the tests need beyond node_modules, on a fresh machine.
 * - dist/, the built package, for the tests that run the installed command: rebuilt when older
 *   than the sources.
 * - A Vulkan driver for the WebGPU tests: SwiftShader, the CPU driver Debian's chromium ships, is
 *   installed with apt when missing and we are root; otherwise we say what to install.
 * - Debian's PyTorch (CPU) with its C++ headers, pybind11 and ninja, for the test that builds the
 *   generated PyTorch extension for CPU tensors: installed the same way.
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

const asRoot = process.getuid?.() === 0;
const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const canApt = asRoot && existsSync('/usr/bin/apt-get');

if (!process.env.VK_ICD_FILENAMES && !findSwiftShaderIcd()) {
  if (systemVulkanLoader()) {
    console.error('pretest: no SwiftShader; the WebGPU tests will use the Vulkan driver of this machine');
  } else if (canApt) {
    console.error('pretest: installing chromium for SwiftShader, the CPU Vulkan driver the WebGPU tests use');
    run('apt-get', ['update'], aptEnv);
    run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], aptEnv);
  } else {
    console.error(
      'pretest: the WebGPU tests need a Vulkan driver and none was found. Install SwiftShader, the CPU driver\n' +
        "Chromium ships ('apt-get install chromium' as root on Debian), or set VK_ICD_FILENAMES to a driver's\n" +
        `manifest. Looked for: ${SWIFTSHADER_ICDS.join(', ')}.`,
    );
    process.exit(1);
  }
}

const TORCH_PACKAGES = ['python3-torch', 'libtorch-dev', 'python3-dev', 'pybind11-dev', 'ninja-build'];
const torchReady =
  spawnSync('/usr/bin/python3', ['-c', 'import torch'], { stdio: 'ignore' }).status === 0 &&
  existsSync('/usr/include/torch/extension.h') &&
  existsSync('/usr/include/pybind11/pybind11.h') &&
  spawnSync('ninja', ['--version'], { stdio: 'ignore' }).status === 0;
if (!torchReady && !process.env.TTTC_PYTHON) {
  if (canApt) {
    console.error("pretest: installing Debian's PyTorch (CPU) for the PyTorch binding's CPU test");
    run('apt-get', ['update'], aptEnv);
    run('apt-get', ['install', '-y', '--no-install-recommends', ...TORCH_PACKAGES], aptEnv);
  } else {
    console.error(
      `pretest: the PyTorch binding's CPU test needs Debian's torch: 'apt-get install ${TORCH_PACKAGES.join(' ')}'\n` +
        'as root, or TTTC_PYTHON naming a Python with torch and its C++ extension toolchain.',
    );
    process.exit(1);
  }
}
