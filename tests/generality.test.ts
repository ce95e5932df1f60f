import { webgpuInnerLoop } from '../cli/link.ts';
import { describe, expect, it } from 'vitest';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import type { FormRequest } from '../compiler/dualform/forms.ts';
import { relativeError } from '../core/tensor.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { randomInputs } from './support/inputs.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';

function compile(text: string, form: FormRequest) {
  const r = compileSpec(text, { file: 'unusual.ttt', form });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, text));
  return r.compiled;
}

describe.each(Object.entries(UNUSUAL_SPECS))('%s', (_, text) => {
  const auto = compile(text, 'auto');
  const primal = compile(text, 'primal');
  const named = randomInputs(auto.chunk, { B: 2, H: 2, T: 8, start: 1, accum: true, seed: 11 });
  const want = innerLoopOutputTensors(runReference(primal.chunk, innerLoopInputs(primal.signature, named)));

  it('the chosen form equals the primal form (f64)', () => {
    const got = innerLoopOutputTensors(runReference(auto.chunk, innerLoopInputs(auto.signature, named)));
    for (const [name, w] of want) expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(1e-12);
  });

  it('the WGSL kernel matches the reference (f32)', async () => {
    const loop = await webgpuInnerLoop(auto);
    expect(loop.warnings).toEqual([]);
    const got = innerLoopOutputTensors(await loop.run(innerLoopInputs(auto.signature, named), { poison: true }));
    for (const [name, w] of want) expect(relativeError(got.get(name)!.data, w.data), name).toBeLessThan(1e-5);
  });
});
