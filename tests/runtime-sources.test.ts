/** The runtime's inputs as users hold them: weights from a path, URL, bytes; tensors in f32 or f64. */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { innerLoopInputs } from '../runtime/inner-loop.ts';
import { loadReferenceLayerOf } from '../cli/link-layer.ts';
import { loadSafetensors } from '../runtime/safetensors.ts';
import { randomInputs } from './support/inputs.ts';
import { compileExample, referenceDir } from './support/specs.ts';

const weightsPath = join(referenceDir, 'linear_b2_h2_d64_k16_l64.safetensors');

describe('runtime sources', () => {
  it('loads safetensors from a path, a file URL, bytes, an ArrayBuffer and over http', async () => {
    const bytes = readFileSync(weightsPath);
    const server = createServer((_, res) => res.end(bytes));
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/w.safetensors`;
      const sources = [
        weightsPath,
        pathToFileURL(weightsPath),
        new Uint8Array(bytes),
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
        url,
        new URL(url),
      ];
      const names = [];
      for (const s of sources) names.push([...(await loadSafetensors(s)).tensors.keys()].sort());
      for (const n of names) expect(n).toEqual(names[0]);
      expect(names[0].length).toBeGreaterThan(5);
    } finally {
      server.close();
    }
  });

  it('a layer takes Float32Array input as the same values in f64', async () => {
    const compiled = compileExample('ttt_linear.ttt');
    const layer = await loadReferenceLayerOf(compiled, weightsPath, { prefix: 'weights.' });
    const C = 128;
    const data = Float32Array.from({ length: 2 * 5 * C }, (_, i) => Math.sin(i));
    const f32 = await layer.forward({ shape: [2, 5, C], data });
    const f64 = await layer.forward({ shape: [2, 5, C], data: Float64Array.from(data) });
    expect(f32.output.data).toEqual(f64.output.data);
    const token = await layer.step({ shape: [2, C], data: data.subarray(0, 2 * C) }, f32.cache);
    expect(token.shape).toEqual([2, C]);
  });

  it('inner-loop inputs accept f32 tensors', () => {
    const c = compileExample('delta_rule.ttt', 'auto', { D: 4, K: 2 });
    const named = randomInputs(c.chunk, { B: 1, H: 1, T: 3, seed: 3 });
    const f32 = new Map([...named].map(([k, t]) => [k, { shape: t.shape, data: Float32Array.from(t.data) }]));
    const inputs = innerLoopInputs(c.signature, f32);
    expect(inputs.T).toBe(3);
    expect([...inputs.views.values()][0].data).toBeInstanceOf(Float64Array);
  });
});
