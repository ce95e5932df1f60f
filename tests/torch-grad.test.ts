/**
 * torch.autograd through the generated PyTorch binding on CPU tensors (the extension built as host
 * C++ against runtime/cuda-cpu/include): by default the forward that saves checkpoints and the fused
 * backward kernel; with BACKWARD_DTYPE float64 the forward kernel and the unfused generated backward
 * module; both against the f64 reference backward (runReferenceBackward). tests/torch/grad_binding.py
 * drives the module. Module folders are shared with the other torch tests (support/torch-module.ts).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { type Compiled, compileSpec } from '../compiler/pipeline.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import { programKey, runKey } from '../core/mangle.ts';
import type { KernelSignature, Port } from '../core/signature.ts';
import type { Tensor } from '../core/tensor.ts';
import { chunks } from '../core/walk.ts';
import { cacheRoot } from '../runtime/cuda-cpu/build.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
  type InnerLoopGradients,
  type InnerLoopInputs,
} from '../runtime/inner-loop.ts';
import { backwardModule, renderTorchBackward } from '../targets/torch/backward.ts';
import { layerModule } from '../targets/torch/layer.ts';
import { referenceLayer } from '../cli/link-layer.ts';
import { resolveLayerConfig } from '../runtime/layer/config.ts';
import { assembleWeights, weightSpecs } from '../runtime/layer/weights.ts';
import { type InputOptions, randomInputs } from './support/inputs.ts';
import { normals, rng } from './support/random.ts';
import { compileExample, exampleFiles, repoRoot } from './support/specs.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';
import { randomSpec } from './support/random-spec.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { runTorchPython, torchModuleDir } from './support/torch-module.ts';
import { stem } from '../targets/target.ts';

/** A first run builds the extension (host C++ of the whole kernel): minutes on a loaded 2-core machine. */
const BUILD_TIMEOUT = 300_000;

const json = (t: Tensor) => ({ shape: t.shape, data: [...t.data] });
const byName = (m: ReadonlyMap<string, Tensor>) => Object.fromEntries([...m].map(([n, t]) => [n, json(t)]));

/** Where the binding takes a port's tensor: its keyword argument and, for dicts, the name in it. */
function pathOf(p: Port): string[] {
  switch (p.role) {
    case 'view':
      return ['views', p.name];
    case 'rate':
      return ['lr'];
    case 'scale':
      return ['scale'];
    case 'param':
      return ['params', p.name];
    case 'state':
      return ['states', p.name];
    case 'accum':
      return ['accums', p.name];
    case 'opt':
      return ['opts', p.name];
    default:
      return ['tokens', runKey(p)];
  }
}

interface Result {
  outputs: Record<string, number | null>;
  /** By the fused backward kernel (the default), and by the unfused module in float64. */
  grads: Record<string, number | null>;
  grads64: Record<string, number | null>;
  missing: string[];
  walks: unknown[];
  double: string | null;
  out: string | null;
}

/** Walks over many calls, for the module's chunk plan to reproduce. */
function walkCases(K: number, rows: number) {
  const cases = [];
  for (const [k, r] of [
    [K, rows],
    [4, 4],
    [5, 2],
    [16, 3],
    [7, 1],
  ])
    for (let start = 0; start < k; start += Math.max(1, Math.floor(k / 3)))
      for (const T of [1, 2, k - 1, k, k + 1, 3 * k + 2])
        if (T > 0)
          cases.push({
            args: [start, T, k, r],
            chunks: chunks(start, T, k, r).map((c) => [c.token, c.position, c.count, c.ends]),
          });
  return cases;
}

async function autogradAgainstReference(c: Compiled, o: InputOptions): Promise<Result> {
  const dir = await torchModuleDir(c);
  const named = randomInputs(c.chunk, o);
  const sig = c.signature;
  const inputs = innerLoopInputs(sig, named);
  const checkpoints: Checkpoints = [];
  const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs, checkpoints));
  const r = rng(o.seed + 1);
  const ct = new Map([...outputs].map(([n, t]) => [n, { shape: t.shape, data: normals(r, t.data.length) }]));
  const cotangents = innerLoopCotangents(sig, inputs, ct);
  const grads = gradientTensors(
    runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents),
    named,
  );

  const call: Record<string, unknown> = { start: inputs.start };
  const expectedGrads = [];
  for (const p of sig.inputs) {
    const t = named.get(runKey(p));
    if (!t) continue;
    const path = pathOf(p);
    if (path.length === 1) call[path[0]] = json(t);
    else ((call[path[0]] ??= {}) as Record<string, unknown>)[path[1]] = json(t);
    const name = runKey({ ...p, grad: true });
    expectedGrads.push({ name, path, tensor: json(grads.get(name)!) });
  }
  const caseJson = {
    inputs: call,
    cotangents: {
      output: json(cotangents.output),
      states: byName(cotangents.states),
      accums: byName(cotangents.accums),
      opts: byName(cotangents.opts),
    },
    expected: { outputs: byName(outputs), grads: expectedGrads },
    walks: walkCases(c.chunk.K, c.chunk.rows),
  };
  const casePath = join(dir, `grad-case-${o.seed}.json`);
  writeFileSync(casePath, JSON.stringify(caseJson));
  const stdout = runTorchPython('tests/torch/grad_binding.py', dir, stem(c), casePath);
  return JSON.parse(stdout) as Result;
}

/** The fused backward (the default) and the unfused one in float64 each within 1e-4 of the reference. */
function expectClose(result: Result, layer: string) {
  expect(result.missing, 'inputs autograd gave no gradient').toEqual([]);
  expect(result.walks, 'walks the module plans differently from core/walk.ts').toEqual([]);
  for (const [name, e] of Object.entries(result.outputs)) expect(e ?? Number.NaN, `output ${name}`).toBeLessThan(1e-5);
  console.log(
    `${layer}: ${Object.entries(result.grads)
      .map(([n, e]) => `${n} ${(e ?? NaN).toExponential(2)} (unfused ${(result.grads64[n] ?? NaN).toExponential(2)})`)
      .join(', ')}`,
  );
  for (const [name, e] of Object.entries(result.grads)) expect(e ?? Number.NaN, `${name} (fused)`).toBeLessThan(1e-4);
  for (const [name, e] of Object.entries(result.grads64))
    expect(e ?? Number.NaN, `${name} (unfused, float64)`).toBeLessThan(1e-4);
  expect(result.out).toMatch(/^out= writes in place, which autograd cannot follow/);
  expect(result.double).toMatch(new RegExp(`^double backward of the ${layer} inner loop is not supported`));
}

describe('torch.autograd through the generated binding on CPU tensors', () => {
  it(
    'ttt_linear: gradients of every input match the f64 reference backward within 1e-4',
    async () => {
      const c = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 4 });
      // start 1, T 10: chunks of 3, 4 and a trailing partial 3; carried accumulators.
      const result = await autogradAgainstReference(c, { B: 2, H: 2, T: 10, start: 1, accum: true, seed: 31 });
      expect(Object.keys(result.grads).sort()).toEqual(
        ['grad.k', 'grad.v', 'grad.q', 'grad.lr', 'grad.scale', 'grad.param.gamma', 'grad.param.beta']
          .concat(['grad.state.W1', 'grad.state.b1', 'grad.accum.W1', 'grad.accum.b1'])
          .sort(),
      );
      expectClose(result, c.layer.name);
    },
    BUILD_TIMEOUT,
  );

  it(
    'ttt_mlp with states given per head: gradients match, summed over the sequences',
    async () => {
      const c = compileExample('ttt_mlp.ttt', 'auto', { D: 8, K: 4 });
      const result = await autogradAgainstReference(c, {
        B: 2,
        H: 2,
        T: 9,
        start: 2,
        accum: true,
        sharedState: true,
        seed: 32,
      });
      expectClose(result, c.layer.name);
    },
    BUILD_TIMEOUT,
  );

  it(
    'a rule with decay, momentum and optimizer states (Titans): gradients match',
    async () => {
      const c = compileExample('rules/titans_mlp_memory.ttt', 'auto', { D: 8, K: 4 });
      // Rates scaled by 0.3: at the drawn ones the memory grows until pre-activations pass 88, where
      // exp in the derivative of silu overflows float32 (the forward's silu does not), and the fused
      // backward, in float32, gives NaN; the unfused one, in float64, does not.
      const result = await autogradAgainstReference(c, {
        B: 1,
        H: 2,
        T: 7,
        start: 3,
        accum: true,
        rates: 0.3,
        seed: 33,
      });
      expect(Object.keys(result.grads)).toEqual(expect.arrayContaining(['grad.decay', 'grad.momentum', 'grad.opt.W1']));
      expectClose(result, c.layer.name);
    },
    BUILD_TIMEOUT,
  );
});

/** A call's tensors (inputs, or gradients shaped like them) by their mini-batch program names. */
function byProgramKey(sig: KernelSignature, t: InnerLoopGradients | InnerLoopInputs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of sig.inputs) {
    const [group, name] = pathOf(p);
    const value = {
      views: t.views,
      lr: t.lr,
      scale: t.scale,
      params: t.params,
      states: t.states,
      accums: t.accums,
      opts: t.opts,
      tokens: t.tokens,
    }[group];
    const tensor = value instanceof Map ? value.get(name) : value;
    if (tensor) out[programKey(p)] = json(tensor as Tensor);
  }
  return out;
}

/** Every example (rules included), the unusual and some random specs, and a program of fewer rows than K. */
function backwardCases(): [string, Compiled][] {
  const small = { D: 4, K: 4 };
  const rules = readdirSync(join(repoRoot, 'examples/rules')).filter((f) => f.endsWith('.ttt'));
  return [
    ...exampleFiles.map((f): [string, Compiled] => [f, compileExample(f, 'auto', small)]),
    ...rules.map((f): [string, Compiled] => [`rules/${f}`, compileExample(`rules/${f}`, 'auto', small)]),
    ['ttt_mlp.ttt, 3 rows', compileExample('ttt_mlp.ttt', 'auto', small, 3)],
    ...[
      ...Object.entries(UNUSUAL_SPECS),
      ...[1, 2, 3, 4, 5, 6, 7, 8].map((seed) => [`random spec ${seed}`, randomSpec(seed)]),
    ].map(([name, text]): [string, Compiled] => {
      const r = compileSpec(text, { file: 'unusual.ttt' });
      if (!r.ok) throw new Error(`${name}: ${formatDiagnostics(r.diagnostics, text)}`);
      return [name, r.compiled];
    }),
  ];
}

describe('the generated backward module alone, in float64', () => {
  it('matches the f64 reference backward below 1e-10 for every example, unusual and random spec', () => {
    const cases: Record<string, unknown> = {};
    backwardCases().forEach(([label, c], i) => {
      const contents = renderTorchBackward(c);
      const dir = join(cacheRoot(), 'torch-backward', createHash('sha256').update(contents).digest('hex').slice(0, 16));
      mkdirSync(dir, { recursive: true });
      const module = join(dir, backwardModule(c));
      writeFileSync(module, contents);
      const start = c.signature.rule?.read === 'after' ? 0 : Math.min(1, c.chunk.K - 1);
      // Chunks of fewer rows than K walk long enough for several segments of the backward's checkpoints.
      const T = c.chunk.K + 4 + (c.chunk.rows < c.chunk.K ? 20 : 0);
      const named = randomInputs(c.chunk, { B: 2, H: 2, T, start, accum: true, seed: 50 + i });
      const inputs = innerLoopInputs(c.signature, named);
      const checkpoints: Checkpoints = [];
      const outputs = innerLoopOutputTensors(runReference(c.chunk, inputs, checkpoints));
      const r = rng(70 + i);
      const ct = new Map([...outputs].map(([n, t]) => [n, { shape: t.shape, data: normals(r, t.data.length) }]));
      const cotangents = innerLoopCotangents(c.signature, inputs, ct);
      const grads = runReferenceBackward(deriveChunkBackward(c.chunk), inputs, checkpoints, cotangents);
      const programCotangents: Record<string, unknown> = { output: json(cotangents.output) };
      for (const o of c.signature.outputs)
        if (o.role !== 'output') {
          const m = { state: cotangents.states, accum: cotangents.accums, opt: cotangents.opts }[o.role as string]!;
          programCotangents[programKey(o)] = json(m.get(o.name)!);
        }
      cases[label] = {
        module,
        start,
        inputs: byProgramKey(c.signature, inputs),
        cotangents: programCotangents,
        expected: byProgramKey(c.signature, grads),
      };
    });
    const casesPath = join(cacheRoot(), 'torch-backward', 'cases.json');
    writeFileSync(casesPath, JSON.stringify(cases));
    const result = JSON.parse(runTorchPython('tests/torch/backward_module.py', casesPath)) as Record<
      string,
      Record<string, number | null>
    >;
    expect(Object.keys(result).sort()).toEqual(Object.keys(cases).sort());
    for (const [label, errors] of Object.entries(result)) {
      expect(Object.keys(errors).length, label).toBeGreaterThan(0);
      for (const [name, e] of Object.entries(errors)) expect(e ?? Number.NaN, `${label}: ${name}`).toBeLessThan(1e-10);
    }
  });
});

describe('the generated nn.Module of the whole layer on CPU tensors', () => {
  it.each([
    ['ttt_linear.ttt', true],
    ['ttt_mlp.ttt', false],
  ])(
    '%s (gate %s): matches the f64 TypeScript reference layer within 1e-4 and backpropagates',
    async (spec, useGate) => {
      const c = compileExample(spec, 'auto', { D: 8, K: 4 });
      const dir = await torchModuleDir(c);
      const config = resolveLayerConfig(c.signature, { heads: 2, baseLr: 0.5, useGate });
      const r = rng(41);
      const weights = new Map<string, Tensor>();
      for (const w of weightSpecs(c.signature, config)) {
        const shape = w.shapes[0];
        const n = shape.reduce((p, d) => p * d, 1);
        // Norm weights near one; everything else scaled by its fan-in.
        const data =
          w.name.endsWith('norm.weight') || w.name === 'ttt_norm_weight'
            ? normals(r, n, 0.1).map((v) => 1 + v)
            : normals(r, n, 1 / Math.sqrt(shape[shape.length - 1]));
        weights.set(w.name, { shape, data });
      }
      // T 10: two whole mini-batches of 4 and a partial one.
      const x = { shape: [2, 10, config.width], data: normals(r, 2 * 10 * config.width) };
      const layer = referenceLayer(c, config, assembleWeights(c.signature, weights));
      const { output } = await layer.forward(x);
      const casePath = join(dir, 'layer-case.json');
      writeFileSync(
        casePath,
        JSON.stringify({
          width: config.width,
          options: { base_lr: config.baseLr, use_gate: useGate },
          weights: byName(weights),
          x: json(x),
          expected: json(output),
        }),
      );
      const result = JSON.parse(runTorchPython('tests/torch/layer_module.py', dir, stem(c), casePath)) as {
        error: number;
        bad: string[];
        autograd: number;
        difference: number;
      };
      expect(result.error).toBeLessThan(1e-4);
      expect(result.bad, 'parameters without a finite, nonzero gradient').toEqual([]);
      expect(Math.abs(result.autograd - result.difference)).toBeLessThan(1e-2 * Math.abs(result.autograd));
    },
    BUILD_TIMEOUT,
  );
});

describe('the training example (examples/train)', () => {
  it(
    'trains a few steps through the generated layer and writes its loss curve',
    async () => {
      const c = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 4 });
      const dir = await torchModuleDir(c);
      const plot = join(dir, 'train-loss.svg');
      rmSync(plot, { force: true });
      const stdout = runTorchPython(
        'examples/train/train.py',
        join(dir, layerModule(c)),
        '--steps',
        '4',
        '--tokens',
        '10',
        '--plot',
        plot,
      );
      expect(stdout).toMatch(/^first loss \d+\.\d+, final loss \d+\.\d+/m);
      const svg = readFileSync(plot, 'utf8');
      expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      expect(
        svg
          .match(/<polyline points="([^"]*)"/)![1]
          .trim()
          .split(' '),
      ).toHaveLength(4);
    },
    BUILD_TIMEOUT,
  );
});
