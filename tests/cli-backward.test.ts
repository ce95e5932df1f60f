import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tttc } from './support/cli.ts';
import { deriveChunkBackward } from '../compiler/backward/derive.ts';
import { relativeError, type Tensor } from '../core/tensor.ts';
import {
  gradientTensors,
  innerLoopCotangents,
  innerLoopInputs,
  innerLoopOutputTensors,
} from '../runtime/inner-loop.ts';
import { toSafeTensors } from '../runtime/named-tensors.ts';
import { runReferenceBackward } from '../compiler/reference/backward.ts';
import { type Checkpoints, runReference } from '../compiler/reference/inner-loop.ts';
import { readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { randomInputs } from './support/inputs.ts';
import { normals, rng } from './support/random.ts';
import { compileExample, repoRoot } from './support/specs.ts';

const spec = join(repoRoot, 'examples', 'ttt_linear.ttt');
const dims = ['-D', 'D=4', '-D', 'K=4'];
const compiled = compileExample('ttt_linear.ttt', 'auto', { D: 4, K: 4 });
// States per head ([H, ...]) with carried accumulators, from position 1, ending in an open mini-batch.
const named = randomInputs(compiled.chunk, { B: 2, H: 3, T: 6, start: 1, accum: true, sharedState: true, seed: 5 });
const r = rng(6);
const cotangents = new Map<string, Tensor>([
  ['output', { shape: [2, 3, 6, 4], data: normals(r, 2 * 3 * 6 * 4) }],
  ['state.W1', { shape: [2, 3, 4, 4], data: normals(r, 2 * 3 * 16) }],
]);

async function files(ct: Map<string, Tensor>) {
  const dir = mkdtempSync(join(tmpdir(), 'tttc-backward-'));
  const paths = {
    inputs: join(dir, 'in.safetensors'),
    ct: join(dir, 'ct.safetensors'),
    out: join(dir, 'out.safetensors'),
  };
  await writeSafetensorsFile(paths.inputs, toSafeTensors(named, 'F64'));
  await writeSafetensorsFile(paths.ct, toSafeTensors(ct, 'F64'));
  return paths;
}

const runWith = (p: { inputs: string; ct: string; out: string }, ...more: string[]) =>
  tttc('run', spec, ...dims, '--inputs', p.inputs, '--cotangents', p.ct, '--out', p.out, ...more);

describe('tttc run --cotangents', () => {
  it('writes the outputs and grad.NAME for every differentiable input, shaped like it', async () => {
    const p = await files(cotangents);
    const res = await runWith(p);
    expect(res.code, res.err).toBe(0);
    expect(res.out).toContain('with gradients');
    const out = await readSafetensorsFile(p.out);
    const names = [...out.tensors.keys()].sort();
    const differentiable = [...named.keys()].filter((n) => n !== 'start');
    expect(names).toEqual(
      [...['output', 'state.W1', 'state.b1', 'accum.W1', 'accum.b1'], ...differentiable.map((n) => `grad.${n}`)].sort(),
    );
    for (const n of differentiable) expect(out.get(`grad.${n}`).shape, n).toEqual(named.get(n)!.shape);
    expect(out.get('grad.state.W1').shape).toEqual([3, 4, 4]);

    const sig = compiled.signature;
    const inputs = innerLoopInputs(sig, named);
    const checkpoints: Checkpoints = [];
    const outputs = innerLoopOutputTensors(runReference(compiled.chunk, inputs, checkpoints));
    for (const [n, t] of outputs) expect(relativeError(toFloat64(out.get(n)), t.data), n).toBe(0);
    const grads = runReferenceBackward(
      deriveChunkBackward(compiled.chunk),
      inputs,
      checkpoints,
      innerLoopCotangents(sig, inputs, cotangents),
    );
    for (const [n, t] of gradientTensors(grads, named)) expect(relativeError(toFloat64(out.get(n)), t.data), n).toBe(0);
  });

  it('requires the output cotangent, and names a mis-shaped or unknown one with both shapes', async () => {
    const missing = await files(new Map([['state.W1', cotangents.get('state.W1')!]]));
    let res = await runWith(missing);
    expect(res.code).toBe(1);
    expect(res.err).toContain(`${missing.ct}: missing cotangent 'output' (expected shape [2, 3, 6, 4])`);
    expect(existsSync(missing.out)).toBe(false);

    const misShaped = await files(
      new Map([...cotangents, ['accum.b1', { shape: [2, 3, 5], data: new Float64Array(30) }]]),
    );
    res = await runWith(misShaped);
    expect(res.code).toBe(1);
    expect(res.err).toContain("cotangent 'accum.b1' has shape [2, 3, 5], expected [2, 3, 4]");
    expect(existsSync(misShaped.out)).toBe(false);

    res = await runWith(await files(new Map([...cotangents, ['grad.q', cotangents.get('output')!]])));
    expect(res.code).toBe(1);
    expect(res.err).toContain("unknown cotangent 'grad.q'");
  });

  it.each(['webgpu', 'cuda-cpu'])(
    'the %s backend writes the same tensors, within 1e-4 of the reference',
    async (backend) => {
      const [ref, other] = [await files(cotangents), await files(cotangents)];
      expect((await runWith(ref)).code).toBe(0);
      const res = await runWith(other, '--backend', backend);
      expect(res.code, res.err).toBe(0);
      const [want, got] = [await readSafetensorsFile(ref.out), await readSafetensorsFile(other.out)];
      expect([...got.tensors.keys()].sort()).toEqual([...want.tensors.keys()].sort());
      for (const n of want.tensors.keys())
        expect(relativeError(toFloat64(got.get(n)), toFloat64(want.get(n))), n).toBeLessThan(1e-4);
    },
  );

  it('example-inputs writes cotangents that run --cotangents takes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-ct-'));
    const [inputs, ct, out] = ['in', 'ct', 'out'].map((n) => join(dir, `${n}.safetensors`));
    const made = await tttc('example-inputs', spec, ...dims, '--out', inputs, '--cotangents', ct, '--tokens', '7');
    expect(made.code, made.err).toBe(0);
    expect((await readSafetensorsFile(ct)).tensors.get('output')!.shape).toEqual([1, 2, 7, 4]);
    const res = await tttc('run', spec, ...dims, '--inputs', inputs, '--cotangents', ct, '--out', out);
    expect(res.code, res.err).toBe(0);
    const grads = (await readSafetensorsFile(out)).tensors;
    expect(grads.get('grad.q')!.shape).toEqual([1, 2, 7, 4]);
    expect(grads.get('grad.state.W1')!.shape).toEqual([1, 2, 4, 4]);
  });
});
