/**
 * The generated PyTorch binding with bf16 I/O (`io: 'bf16'`) on CPU tensors: tests/torch/
 * bf16_io_binding.py runs the module on bf16 views (the .cu built as host C++, as in
 * tests/torch-cpu.test.ts), refuses float32 views and outputs, and trains through it to the same
 * results as the io f32 module on the same bf16 values: the fused backward's kernels reading the
 * bf16 views and output cotangent and writing bf16 view gradients, and the unfused float64 one,
 * each with no cast of the views before the call. Module folders are shared with the other torch
 * tests (support/torch-module.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { stem } from '../targets/target.ts';
import { expectBf16OutputWithin, roundedViews } from './support/bf16-io.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';
import { runTorchPython, torchModuleDir } from './support/torch-module.ts';

/** The f32 kernel's tolerance against the f64 reference, as tests/torch-cpu.test.ts. */
const TOL = 1e-5;

const json = (t: Tensor) => ({ shape: t.shape, data: [...t.data] });
const byName = (m: ReadonlyMap<string, Tensor>) => Object.fromEntries([...m].map(([n, t]) => [n, json(t)]));

// A first run builds two extensions (host C++ of the whole kernel): minutes on a loaded 2-core machine.
describe('the generated PyTorch binding with bf16 I/O on CPU tensors', { timeout: 600_000 }, () => {
  it('ttt_linear: bf16 views and output within the derived bound, f32 tensors refused, training as the f32 module', async () => {
    // The sizes of tests/torch-cpu.test.ts, so the io f32 module's build is shared.
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 4 });
    const f32Dir = await torchModuleDir(c);
    const bf16Dir = await torchModuleDir(c, { arch: 'sm_90', dtype: 'f32', io: 'bf16' });

    const named = randomInputs(c.chunk, { B: 2, H: 2, T: 13, start: 3, accum: true, seed: 21 });
    const inputs = innerLoopInputs(c.signature, named);
    const expected = innerLoopOutputTensors(runReference(c.chunk, roundedViews(inputs)));
    const input = {
      views: byName(inputs.views),
      ...(inputs.lr ? { lr: json(inputs.lr) } : {}),
      ...(inputs.scale ? { scale: json(inputs.scale) } : {}),
      params: byName(inputs.params),
      states: byName(inputs.states),
      accums: byName(inputs.accums),
      start: inputs.start,
    };
    const casePath = join(bf16Dir, 'bf16-io-case.json');
    const width = c.layer.dims.get('D')! * 2;
    writeFileSync(casePath, JSON.stringify({ inputs: input, expected: byName(expected), width }));

    const result = JSON.parse(runTorchPython('tests/torch/bf16_io_binding.py', f32Dir, bf16Dir, stem(c), casePath)) as {
      output: { dtype: string; shape: number[]; data: number[] };
      errors: Record<string, number | null>;
      messages: Record<string, string | null>;
      training: Record<string, Record<string, boolean>>;
      layer: { inference: number; training: number; dtype: string; 'finite gradients': boolean };
    };
    expect(result.output.dtype).toBe('torch.bfloat16');
    expectBf16OutputWithin(result.output, expected.get('output')!, TOL, 'output');
    expect(Object.keys(result.errors).sort()).toEqual([...expected.keys()].filter((k) => k !== 'output').sort());
    for (const [name, e] of Object.entries(result.errors)) expect(e ?? Number.NaN, name).toBeLessThan(TOL);

    expect(result.messages['f32 view']).toMatch(
      /^TypeError: views\['\w+'\] has dtype torch.float32, expected torch.bfloat16/,
    );
    expect(result.messages['f32 out']).toMatch(
      /^TypeError: out output has dtype torch.float32, expected torch.bfloat16/,
    );

    for (const backward of ['fused', 'unfused']) {
      const t = result.training[backward];
      expect(Object.keys(t).length, backward).toBeGreaterThan(4);
      expect(t['no widening copy'], `${backward}: the call takes the bf16 views as they are`).toBe(true);
      for (const [name, same] of Object.entries(t)) expect(same, `${backward}: ${name}`).toBe(true);
    }

    // The whole layer with the same weights: its views and inner output rounded to bf16 (2^-8
    // relative each, as bf16 matmul operands are), so within the bf16 operands' tolerance of
    // tests/cuda-cpu.test.ts (3e-2), and not equal (the rounding happened).
    const { layer } = result;
    expect(layer.dtype).toBe('torch.float32');
    expect(layer['finite gradients']).toBe(true);
    for (const e of [layer.inference, layer.training]) {
      expect(e).toBeLessThan(3e-2);
      expect(e).toBeGreaterThan(0);
    }
  });
});
