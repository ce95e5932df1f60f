// The `ts` target: generated modules type-check under the repository's compiler settings (and a
// misuse does not), embed the kernel exactly, load nothing of the compiler, and the TTT-Linear
// module reproduces the published PyTorch layer on WebGPU; a generated backward of the inner loop
// (Titans' memory, an update rule) matches the f64 reference backward.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { referenceLayer } from '../cli/link-layer.ts';
import type { LayerCache } from '../runtime/layer/cache.ts';
import { resolveLayerConfig } from '../runtime/layer/config.ts';
import { layerFromSafeFile, weightSpecs } from '../runtime/layer/weights.ts';
import { readSafetensors, readSafetensorsFile, toFloat64, writeSafetensors } from '../runtime/safetensors.ts';
import { normals, rng } from './support/random.ts';
import { LimitError, WebGPUInnerLoop } from '../runtime/webgpu/inner-loop.ts';
import type { WgslKernelManifest } from '../core/manifest.ts';
import { tsTarget } from '../targets/ts/emit.ts';
import { WEBGPU_DEFAULT_LIMITS, wgslManifest } from '../targets/wgsl/render.ts';
import { compileExample, referenceDir, repoRoot } from './support/specs.ts';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
  type InnerLoopCotangents,
  type InnerLoopInputs,
} from '../runtime/inner-loop.ts';
import type { BackwardResult } from '../runtime/webgpu/backward.ts';
import { randomInputs } from './support/inputs.ts';

/**
 * Spec → the module it generates; delta_rule has no params and no position scale; Titans' memory
 * has an update rule with per-token decay and momentum and optimizer states, per_state_rates a
 * rate per state and no optimizer state.
 */
const MODULES = {
  'ttt_linear.ttt': 'ttt_linear',
  'ttt_mlp.ttt': 'ttt_mlp',
  'delta_rule.ttt': 'delta_rule',
  'rules/titans_mlp_memory.ttt': 'titans_mlp_memory',
  'rules/per_state_rates.ttt': 'per_state_rates',
};
/** Small sizes for the rules examples, so their kernels build quickly on SwiftShader. */
const SIZES: Record<string, Record<string, number>> = {
  'rules/titans_mlp_memory.ttt': { D: 8, K: 4 },
  'rules/per_state_rates.ttt': { D: 8, K: 4 },
};
const compileModule = (spec: string) => compileExample(spec, 'auto', SIZES[spec] ?? {});

const USAGE = `import { DeltaRule } from './gen/delta_rule.js';
import { PerStateRates, type PerStateRatesRuleInput } from './gen/per_state_rates.js';
import { TitansMemory, type TitansMemoryCache, type TitansMemoryOptimizerState } from './gen/titans_mlp_memory.js';
import { TTTLinear, TTTLinearInnerLoopBackward } from './gen/ttt_linear.js';
import { TTTMLP } from './gen/ttt_mlp.js';
import type { InnerLoopCotangents, InnerLoopInputs } from 'tttc/runtime';

export async function gradients(inputs: InnerLoopInputs, cotangents: InnerLoopCotangents): Promise<number> {
  const backward = await TTTLinearInnerLoopBackward.create();
  const { outputs, grads } = await backward.run(inputs, cotangents);
  return outputs.output.data.length + grads.views.get('q')!.data.length + (grads.scale?.data.length ?? 0);
}

export async function rules(x: { shape: number[]; data: Float64Array }, bytes: Uint8Array): Promise<number> {
  const titans = await TitansMemory.load(bytes, { baseLr: 1, names: { ruleGates: { decay: 'forget_gate' } } });
  const { cache } = await titans.forward(x);
  const carried: TitansMemoryCache = cache;
  const which: TitansMemoryOptimizerState = 'W2';
  const u = carried.opts.get(which)!;
  await titans.step({ shape: [x.shape[0], x.shape[2]], data: new Float64Array(x.shape[0] * x.shape[2]) }, carried);
  const gates = await titans.ruleInputs(x);
  const rates = await (await PerStateRates.load(bytes)).ruleInputs(x);
  const rate: PerStateRatesRuleInput = 'lr.W';
  return u.data.length + gates.get('momentum')!.data.length + rates.get(rate)!.data.length;
}

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
  "(await TitansMemory.load('w.safetensors')).createCache(1).opts.get('W3');",
  "await TitansMemory.load('w.safetensors', { names: { ruleGates: { forget: 'f' } } });",
  "await (await PerStateRates.load('w.safetensors')).ruleInputs(x).then((m) => m.get('lr.b'));",
  "await (await TTTLinear.load('w.safetensors')).ruleInputs(x);",
  "await TTTLinear.load('w.safetensors', { names: { states: { W2: 'w2' } } });",
  "if ((await TTTLinear.load('w.safetensors')).config.miniBatch === 32) return;",
  "await DeltaRule.load('w.safetensors', { names: { params: { gamma: 'g' } } });",
];

const MISUSE = `import { DeltaRule } from './gen/delta_rule.js';
import { PerStateRates } from './gen/per_state_rates.js';
import { TitansMemory } from './gen/titans_mlp_memory.js';
import { TTTLinear } from './gen/ttt_linear.js';

export async function misuse(x: { shape: number[]; data: Float64Array }): Promise<void> {
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
    for (const f of await tsTarget.emit(compileModule(spec), { arch: 'sm_90', dtype: 'f32' })) {
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
    // One error per misuse, on its line (the seventh line of misuse.ts is the first).
    expect(misuses.map((m) => Number(m.split(':')[0]))).toEqual(MISUSES.map((_, i) => 7 + i));
    expect(misuses[0]).toContain("'prefx' does not exist");
    expect(misuses[1]).toContain(`'"W3"' is not assignable to parameter of type 'TitansMemoryOptimizerState'`);
    expect(misuses[2]).toContain("'forget' does not exist");
    expect(misuses[3]).toContain(`'"lr.b"' is not assignable to parameter of type '"lr.W"'`);
    expect(misuses[4]).toContain("Property 'ruleInputs' does not exist on type 'TTTLinear'");
    expect(misuses[5]).toContain("'W2' does not exist");
    expect(misuses[6]).toContain("the types '16' and '32' have no overlap");
    expect(misuses[7]).toContain("'params' does not exist");
  });

  it('embeds the manifest for WebGPU default limits, the WGSL kept exactly', async () => {
    for (const [spec, module] of Object.entries(MODULES)) {
      const generated = await import(pathToFileURL(join(dir, 'gen', `${module}.ts`)).href);
      expect(generated.manifest).toEqual(wgslManifest(compileModule(spec), WEBGPU_DEFAULT_LIMITS));
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

describe('the generated Titans memory module (an update rule) on WebGPU', () => {
  interface GeneratedLayer {
    forward(x: Tensor, cache?: unknown): Promise<{ output: Tensor; cache: LayerCache }>;
    step(x: Tensor, cache: unknown): Promise<Tensor>;
    ruleInputs(x: Tensor): Promise<ReadonlyMap<string, Tensor>>;
    destroy(): void;
  }
  interface GeneratedModule {
    TitansMemory: { load(weights: Uint8Array, options: { baseLr: number }): Promise<GeneratedLayer> };
  }

  it('forward and a step after it equal the f64 layer, the optimizer states carried in the cache', async () => {
    const compiled = compileModule('rules/titans_mlp_memory.ttt');
    const config = resolveLayerConfig(compiled.signature, { heads: 2, baseLr: 0.5 });
    const r = rng(8);
    const named = new Map(
      weightSpecs(compiled.signature, config).map((w) => {
        const shape = w.shapes[0];
        const n = shape.reduce((a, b) => a * b, 1);
        return [
          w.name,
          { dtype: 'F32' as const, shape, data: Float32Array.from(normals(r, n, 1 / Math.sqrt(shape.at(-1)!))) },
        ];
      }),
    );
    const bytes = writeSafetensors(named);
    const { weights } = layerFromSafeFile(readSafetensors(bytes), compiled.signature, { heads: 2, baseLr: 0.5 });
    const reference = referenceLayer(compiled, config, weights);
    const x = { shape: [2, 6, 16], data: Float64Array.from(Float32Array.from(normals(r, 2 * 6 * 16))) };
    const { output: want, cache: wantCache } = await reference.forward(x);

    const { TitansMemory }: GeneratedModule = await import(
      pathToFileURL(join(dir, 'gen', 'titans_mlp_memory.ts')).href
    );
    const layer = await TitansMemory.load(bytes, { baseLr: 0.5 });
    try {
      const first = (t: Tensor, n: number) => {
        const data = new Float64Array(2 * n * 16);
        for (let b = 0; b < 2; b++) data.set(t.data.subarray(b * 6 * 16, (b * 6 + n) * 16), b * n * 16);
        return { shape: [2, n, 16], data };
      };
      const { output, cache } = await layer.forward(x);
      expect(relativeError(output.data, want.data)).toBeLessThan(1e-4);
      expect([...cache.opts.keys()]).toEqual(['W1', 'W2']);
      for (const [s, t] of wantCache.opts) expect(relativeError(cache.opts.get(s)!.data, t.data), s).toBeLessThan(1e-4);
      const gates = await layer.ruleInputs(x);
      expect([...gates.keys()]).toEqual(['decay', 'momentum']);
      const wantGates = await reference.ruleInputs(x);
      for (const [n, t] of wantGates) expect(relativeError(gates.get(n)!.data, t.data), n).toBeLessThan(1e-5);

      // Five tokens as a prefill, then the sixth through step.
      const { cache: stepCache } = await layer.forward(first(x, 5));
      const last = await layer.step(
        { shape: [2, 16], data: Float64Array.from([...x.data.subarray(80, 96), ...x.data.subarray(176, 192)]) },
        stepCache,
      );
      const wantLast = Float64Array.from([...want.data.subarray(80, 96), ...want.data.subarray(176, 192)]);
      expect(relativeError(last.data, wantLast)).toBeLessThan(1e-4);
      for (const [s, t] of wantCache.opts)
        expect(relativeError(stepCache.opts.get(s)!.data, t.data), s).toBeLessThan(1e-4);
    } finally {
      layer.destroy();
    }
  });
});

describe('the generated backward of an update rule (Titans memory) on WebGPU', () => {
  interface GeneratedModule {
    TitansMemoryInnerLoopBackward: {
      create(): Promise<{
        run(i: InnerLoopInputs, c: InnerLoopCotangents, o: { poison: boolean }): Promise<BackwardResult>;
      }>;
    };
  }

  it('TitansMemoryInnerLoopBackward: every gradient within 1e-4 of the f64 reference backward', async () => {
    const c = compileModule('rules/titans_mlp_memory.ttt');
    // start 3, T 7: a partial first mini-batch, a whole one and a partial last; carried accumulators and
    // opts. Rates scaled by 0.3: at the drawn ones the memory grows until silu's exp overflows float32.
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 7, start: 3, accum: true, rates: 0.3, seed: 33 });
    const inputs = innerLoopInputs(c.signature, named);
    const checkpoints: Checkpoints = [];
    const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs, checkpoints));
    const r = rng(34);
    const ct = new Map([...outputs].map(([n, t]) => [n, { shape: t.shape, data: normals(r, t.data.length) }]));
    const cotangents = innerLoopCotangents(c.signature, inputs, ct);
    const backward = runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents);
    const want = gradientTensors(backward, named);

    const { TitansMemoryInnerLoopBackward }: GeneratedModule = await import(
      pathToFileURL(join(dir, 'gen', 'titans_mlp_memory.ts')).href
    );
    const kernels = await TitansMemoryInnerLoopBackward.create();
    const { outputs: gotOutputs, grads } = await kernels.run(inputs, cotangents, { poison: true });
    const got = gradientTensors(grads, named);
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    expect(relativeError(gotOutputs.output.data, outputs.get('output')!.data)).toBeLessThan(1e-5);
    const errors = [...want].map(([n, t]) => [n, relativeError(got.get(n)!.data, t.data)] as const);
    console.log(
      `titans_mlp_memory WebGPU backward: ${errors.map(([n, e]) => `${n} ${e.toExponential(2)}`).join(', ')}`,
    );
    for (const [n, e] of errors) expect(e, n).toBeLessThan(1e-4);
  });
});
