/**
 * The generated PyTorch binding on CPU tensors: tests/torch/cpu_binding.py loads the module
 * `tttc compile --target cuda` writes, runs it on CPU float32 tensors (the .cu built as host C++
 * with torch.utils.cpp_extension against runtime/cuda-cpu/include) and tries bad calls. Needs a
 * python3 with torch (Debian's python3-torch; .ci/run installs it). At the sizes of
 * tests/torch-grad.test.ts's ttt_linear, whose module folder and build it shares (support/torch-module.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { stem } from '../targets/target.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample } from './support/specs.ts';
import { runTorchPython, torchModuleDir } from './support/torch-module.ts';

const json = (t: Tensor) => ({ shape: t.shape, data: [...t.data] });

// A first run builds the extension (host C++ of the whole kernel): minutes on a loaded 2-core machine.
describe('the generated PyTorch binding on CPU tensors', { timeout: 300_000 }, () => {
  it('ttt_linear: matches the f64 reference within 1e-5, and bad calls raise errors that name the tensor', async () => {
    const c = compileExample('ttt_linear.ttt', 'auto', { D: 8, K: 4 });
    const dir = await torchModuleDir(c);

    const named = randomInputs(c.chunk, { B: 2, H: 2, T: 13, start: 3, accum: true, seed: 21 });
    const inputs = innerLoopInputs(c.signature, named);
    const expected = innerLoopOutputTensors(runReference(c.chunk, inputs));
    const byName = (m: Map<string, Tensor>) => Object.fromEntries([...m].map(([n, t]) => [n, json(t)]));
    const input = {
      views: byName(inputs.views),
      ...(inputs.lr ? { lr: json(inputs.lr) } : {}),
      ...(inputs.scale ? { scale: json(inputs.scale) } : {}),
      params: byName(inputs.params),
      states: byName(inputs.states),
      accums: byName(inputs.accums),
      start: inputs.start,
    };
    const casePath = join(dir, 'cpu-case.json');
    writeFileSync(casePath, JSON.stringify({ inputs: input, expected: byName(expected) }));

    const stdout = runTorchPython('tests/torch/cpu_binding.py', dir, stem(c), casePath);
    const result = JSON.parse(stdout) as {
      errors: Record<string, number | null>;
      messages: Record<string, string | null>;
    };
    expect(Object.keys(result.errors).sort()).toEqual([...expected.keys()].sort());
    for (const [name, e] of Object.entries(result.errors)) expect(e ?? Number.NaN, name).toBeLessThan(1e-5);

    const m = result.messages;
    expect(m['f64 view']).toMatch(/^TypeError: views\['\w+'\] has dtype torch.float64, expected torch.float32/);
    expect(m['short view']).toMatch(/^ValueError: views\['\w+'\] has shape \(2, 2, 13, 7\), expected \(2, 2, 13, 8\)/);
    expect(m['missing state']).toMatch(/^ValueError: states must have exactly the names .* missing \['W1'\]/);
    expect(m['start out of range']).toMatch(/^ValueError: start = 4 is not an int in \[0, 4\)/);
    expect(m['state not contiguous']).toMatch(/^ValueError: states\['W1'\] is not contiguous/);
    expect(m['not a tensor']).toMatch(/^TypeError: views\['\w+'\] must be a torch.Tensor, got list/);
  });
});
