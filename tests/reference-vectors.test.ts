import { describe, expect, it } from 'vitest';
import { relativeError } from '../core/tensor.ts';
import { innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { runReference } from '../compiler/reference/inner-loop.ts';
import { loadReference, REFERENCE_FILES } from './support/reference-vectors.ts';
import { compileExample } from './support/specs.ts';

describe('reference executor against the published PyTorch layers (f64)', () => {
  for (const file of REFERENCE_FILES) {
    for (const form of ['dual', 'primal'] as const) {
      it(`${file}, ${form} form`, async () => {
        const ref = await loadReference(file);
        const spec = ref.kind === 'linear' ? 'ttt_linear.ttt' : 'ttt_mlp.ttt';
        const compiled = compileExample(spec, form, {
          D: Number(ref.metadata.head_dim),
          K: Number(ref.metadata.mini_batch_size),
        });
        const out = innerLoopOutputTensors(
          runReference(compiled.chunk, innerLoopInputs(compiled.signature, ref.inputs)),
        );
        for (const [name, want] of ref.expected) {
          const got = out.get(name)!;
          expect(got.shape).toEqual(want.shape);
          expect(relativeError(got.data, want.data), name).toBeLessThan(1e-10);
        }
      });
    }
  }
});
