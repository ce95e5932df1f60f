// The `ts` target: generated modules type-check under the repository's compiler settings (and a
// misuse does not), embed the kernel exactly, load nothing of the compiler, and the TTT-Linear
// module reproduces the published PyTorch layer on WebGPU.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { readSafetensorsFile, toFloat64 } from '../runtime/safetensors.ts';
import { LimitError, WebGPUInnerLoop } from '../runtime/webgpu/inner-loop.ts';
import type { WgslKernelManifest } from '../core/manifest.ts';
import { tsTarget } from '../targets/ts/emit.ts';
import { WEBGPU_DEFAULT_LIMITS, wgslManifest } from '../targets/wgsl/render.ts';
import { compileExample, referenceDir, repoRoot } from './support/specs.ts';

/** Spec → the module it generates; delta_rule has no params and no position scale. */
const MODULES = { 'ttt_linear.ttt': 'ttt_linear', 'ttt_mlp.ttt': 'ttt_mlp', 'delta_rule.ttt': 'delta_rule' };

const USAGE = `import { DeltaRule } from './gen/delta_rule.js';
import { TTTLinear } from './gen/ttt_linear.js';
import { TTTMLP } from './gen/ttt_mlp.js';

export async function usage(x: { shape: number[]; data: Float64Array }, bytes: Uint8Array): Promise<number> {
  const layer = await TTTLinear.load('weights.safetensors', { prefix: 'weights.', names: { params: { gamma: 'g' } } });
  const headDim: 64 = layer.config.headDim;
  const { output, cache } = await layer.forward(x);
  const next = await layer.step({ shape: [x.shape[0], x.shape[2]], data: output.data }, cache);
  const fresh = layer.createCache(2);
  await layer.forward(x, fresh);
  layer.destroy();
  const mlp = await TTTMLP.load(bytes, { heads: 4, baseLr: 0.1, names: { states: { W2: 'w2' } } });
  await DeltaRule.load('delta.safetensors', { useGate: true });
  return headDim + next.data.length + mlp.config.miniBatch;
}
`;

/** Each line a separate mistake the types must catch. */
const MISUSES = [
  "await TTTLinear.load('w.safetensors', { prefx: 'weights.' });",
  "await TTTLinear.load('w.safetensors', { names: { states: { W2: 'w2' } } });",
  "if ((await TTTLinear.load('w.safetensors')).config.miniBatch === 32) return;",
  "await DeltaRule.load('w.safetensors', { names: { params: { gamma: 'g' } } });",
];

const MISUSE = `import { DeltaRule } from './gen/delta_rule.js';
import { TTTLinear } from './gen/ttt_linear.js';

export async function misuse(): Promise<void> {
${MISUSES.map((m) => `  ${m}`).join('\n')}
}
`;

// Inside the repository, so that the generated `import ... from 'tttc/runtime'` resolves through the
// package's self-reference, as it resolves in node_modules for a user.
let dir: string;
beforeAll(async () => {
  mkdirSync(join(repoRoot, 'build'), { recursive: true });
  dir = mkdtempSync(join(repoRoot, 'build', 'ts-target-'));
  mkdirSync(join(dir, 'gen'));
  for (const spec of Object.keys(MODULES)) {
    for (const f of await tsTarget.emit(compileExample(spec), { arch: 'sm_90', dtype: 'f32' })) {
      writeFileSync(join(dir, 'gen', f.path), f.contents);
    }
  }
  writeFileSync(join(dir, 'usage.ts'), USAGE);
  writeFileSync(join(dir, 'misuse.ts'), MISUSE);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Type errors by file (relative to `dir`), as `line: message`, checked with the repository's tsconfig. */
function typeErrors(files: string[]): Map<string, string[]> {
  const config = ts.readConfigFile(join(repoRoot, 'tsconfig.json'), ts.sys.readFile).config;
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, repoRoot);
  const program = ts.createProgram(
    files.map((f) => join(dir, f)),
    options,
  );
  const errors = new Map<string, string[]>();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const file = d.file ? d.file.fileName.slice(dir.length + 1) : '(global)';
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
    errors.set(file, [...(errors.get(file) ?? []), `${line}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`]);
  }
  return errors;
}

describe('the ts target', () => {
  it('generated modules and a typed use of them type-check; each misuse is a type error', () => {
    const generated = Object.values(MODULES).map((m) => `gen/${m}.ts`);
    const errors = typeErrors([...generated, 'usage.ts', 'misuse.ts']);
    const misuses = errors.get('misuse.ts') ?? [];
    errors.delete('misuse.ts');
    expect(Object.fromEntries(errors)).toEqual({});
    // One error per misuse, on its line (the fifth line of misuse.ts is the first).
    expect(misuses.map((m) => Number(m.split(':')[0]))).toEqual(MISUSES.map((_, i) => 5 + i));
    expect(misuses[0]).toContain("'prefx' does not exist");
    expect(misuses[1]).toContain("'W2' does not exist");
    expect(misuses[2]).toContain("the types '16' and '32' have no overlap");
    expect(misuses[3]).toContain("'params' does not exist");
  });

  it('embeds the manifest for WebGPU default limits, the WGSL kept exactly', async () => {
    for (const [spec, module] of Object.entries(MODULES)) {
      const generated = await import(pathToFileURL(join(dir, 'gen', `${module}.ts`)).href);
      expect(generated.manifest).toEqual(wgslManifest(compileExample(spec), WEBGPU_DEFAULT_LIMITS));
    }
  });

  it('the runtime entry point the modules import loads nothing of the compiler', async () => {
    const result = await build({
      entryPoints: [join(repoRoot, 'runtime/index.ts')],
      absWorkingDir: repoRoot,
      bundle: true,
      write: false,
      metafile: true,
      platform: 'node',
      format: 'esm',
      logLevel: 'silent',
      plugins: [
        {
          // Static imports only: the WebGPU package is loaded on demand.
          name: 'static-imports-only',
          setup: (b) =>
            b.onResolve({ filter: /.*/ }, (a) =>
              a.kind === 'dynamic-import' ? { path: a.path, external: true } : undefined,
            ),
        },
      ],
    });
    const outside = Object.keys(result.metafile.inputs).filter((f) => !f.startsWith('runtime/'));
    // Only core/: shapes, the kernel signature and its names, the buffer packing the kernel and the runtime share.
    expect(outside.filter((f) => !f.startsWith('core/'))).toEqual([]);
    expect(outside).toContain('core/signature.ts');
  });
});

describe('the generated TTT-Linear module on WebGPU', () => {
  interface GeneratedLayer {
    forward(x: Tensor, cache?: unknown): Promise<{ output: Tensor; cache: unknown }>;
    step(x: Tensor, cache: unknown): Promise<Tensor>;
    destroy(): void;
  }
  interface GeneratedModule {
    TTTLinear: { load(weights: string, options: { prefix: string }): Promise<GeneratedLayer> };
    manifest: WgslKernelManifest;
  }

  it('forward reproduces output.layer; a step after a prefill continues it', async () => {
    const path = join(referenceDir, 'linear_b2_h2_d64_k16_l64.safetensors');
    const file = await readSafetensorsFile(path);
    const get = (n: string): Tensor => ({ shape: file.get(n).shape, data: toFloat64(file.get(n)) });
    const x = get('input.hidden_states');
    const want = get('output.layer');
    const { TTTLinear }: GeneratedModule = await import(pathToFileURL(join(dir, 'gen', 'ttt_linear.ts')).href);
    const layer = await TTTLinear.load(path, { prefix: 'weights.' });
    try {
      const { output } = await layer.forward(x);
      expect(relativeError(output.data, want.data)).toBeLessThan(1e-4);

      // Tokens [0, T-1) as a prefill, then the last one through step.
      const [B, T, C] = x.shape;
      const tokens = (t: Tensor, from: number, to: number) => {
        const data = new Float64Array(B * (to - from) * C);
        for (let b = 0; b < B; b++)
          data.set(t.data.subarray((b * T + from) * C, (b * T + to) * C), b * (to - from) * C);
        return { shape: [B, to - from, C], data };
      };
      const { cache } = await layer.forward(tokens(x, 0, T - 1));
      const last = await layer.step(tokens(x, T - 1, T), cache);
      expect(relativeError(last.data, tokens(want, T - 1, T).data)).toBeLessThan(1e-4);
    } finally {
      layer.destroy();
    }
  });

  it('a manifest scheduled for more than the adapter offers is refused with a LimitError', async () => {
    const { manifest }: GeneratedModule = await import(pathToFileURL(join(dir, 'gen', 'ttt_linear.ts')).href);
    const greedy = { ...manifest, scheduledFor: { workgroupBytes: 1 << 30, invocations: 256 } };
    await expect(WebGPUInnerLoop.fromManifest(greedy)).rejects.toThrow(LimitError);
    await expect(WebGPUInnerLoop.fromManifest(greedy)).rejects.toThrow(
      `the TTTLinear kernel was scheduled for ${1 << 30} bytes of workgroup storage`,
    );
  });
});
