/**
 * Names that collide with the generated code's own (states `W` and `out_W`, views `lr` and
 * `scale` beside the rate and scale inputs, dims `B`, `T`, `H`): the mangler keeps every port
 * apart, the run convention reads such views as `view.NAME`, WGSL agrees with the f64 reference
 * on WebGPU, and nvcc builds the CUDA for sm_80 and sm_90 without a warning.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { webgpuInnerLoop } from '../cli/link.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { identifier, runKey } from '../core/mangle.ts';
import { allPorts, viewPorts } from '../core/signature.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import { InputError, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { randomInputs, sliceTokens } from './support/inputs.ts';
import { NAME_SPECS } from './specs/names.ts';

const execFileAsync = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'tttc-names-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function compile(text: string, form: 'auto' | 'primal' = 'auto') {
  const r = compileSpec(text, { file: 'names.ttt', form });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, text));
  return r.compiled;
}

describe.each(Object.entries(NAME_SPECS))('%s', (label, text) => {
  const compiled = compile(text);
  const primal = compile(text, 'primal');
  const named = randomInputs(compiled.chunk, { B: 2, H: 2, T: 9, start: 1, accum: true, seed: 5 });
  const want = innerLoopOutputTensors(runReference(primal.chunk, innerLoopInputs(primal.signature, named)));

  it('every port has its own identifier and its own run key per direction', () => {
    const ports = allPorts(compiled.signature);
    expect(new Set(ports.map(identifier)).size).toBe(ports.length);
    for (const io of ['in', 'out'] as const) {
      const keys = ports.filter((p) => p.io === io).map(runKey);
      expect(new Set(keys).size).toBe(keys.length);
    }
  });

  it('the WGSL kernel matches the f64 reference, prefill and one token at a time', async () => {
    const loop = await webgpuInnerLoop(compiled);
    expect(loop.warnings).toEqual([]);
    const got = innerLoopOutputTensors(await loop.run(innerLoopInputs(compiled.signature, named), { poison: true }));
    for (const [name, w] of want) expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(1e-5);

    // Token by token (the decode variant), carrying the state, the accumulator and the position.
    let carried = new Map(named);
    const outputs: Float64Array[] = [];
    for (let t = 0; t < 9; t++) {
      const step = sliceTokens(compiled.chunk, carried, t, t + 1);
      const out = innerLoopOutputTensors(await loop.run(innerLoopInputs(compiled.signature, step), { poison: true }));
      outputs.push(out.get('output')!.data);
      carried = new Map([...carried, ...[...out].filter(([k]) => k !== 'output')]);
      carried.set('start', { shape: [], data: Float64Array.of((1 + t + 1) % compiled.signature.K) });
    }
    const [B, H] = want.get('output')!.shape;
    const width = outputs[0].length / (B * H);
    const stepwise = new Float64Array(want.get('output')!.data.length);
    outputs.forEach((o, t) => {
      for (let bh = 0; bh < B * H; bh++) stepwise.set(o.subarray(bh * width, (bh + 1) * width), (bh * 9 + t) * width);
    });
    expect(relativeError(stepwise, want.get('output')!.data), 'token-by-token output').toBeLessThan(1e-5);
  });

  it.each(['sm_80', 'sm_90'])(
    'nvcc builds the CUDA for %s without a warning',
    async (arch) => {
      const cuda = renderCuda(compiled, { arch, dtype: 'f32' });
      const dir = mkdtempSync(join(work, `${label.slice(0, 8).replace(/\W/g, '_')}-`));
      for (const f of cuda.files) writeFileSync(join(dir, f.path), f.contents);
      const { stdout, stderr } = await execFileAsync(
        'nvcc',
        [
          '-c',
          `-gencode=arch=compute_${arch.slice(3)},code=${arch}`,
          '-Werror',
          'all-warnings',
          '-o',
          join(dir, 'kernel.o'),
          join(dir, cuda.api.source),
        ],
        { cwd: dir },
      );
      expect(stdout + stderr).not.toMatch(/warning/i);
    },
    120_000,
  );
});

describe('the run convention for views named like its own inputs', () => {
  const compiled = compile(NAME_SPECS['views named lr and scale, a param named start, dims named B, T and H']);
  const named = randomInputs(compiled.chunk, { B: 1, H: 2, T: 5, seed: 3 });

  it('reserved view names are written view.NAME; bare lr and scale stay the rate and the scale', () => {
    expect(viewPorts(compiled.signature).map(runKey)).toEqual(['view.lr', 'v', 'view.scale']);
    const inputs = innerLoopInputs(compiled.signature, named);
    expect(inputs.views.get('lr')).toBe(named.get('view.lr'));
    expect(inputs.lr).toBe(named.get('lr'));
    expect(inputs.scale).toBe(named.get('scale'));
  });

  it('a view given under both of its names is refused', () => {
    const twice = new Map<string, Tensor>(named);
    twice.set('view.v', named.get('v')!);
    expect(() => innerLoopInputs(compiled.signature, twice)).toThrow(InputError);
    expect(() => innerLoopInputs(compiled.signature, twice)).toThrow(/'v' and 'view.v'/);
  });
});
