import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Tensor,
  readSafetensors,
  readSafetensorsFile,
  toFloat32,
  toFloat64,
  writeSafetensors,
  writeSafetensorsFile,
} from '../runtime/safetensors.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const referenceDir = resolve(repoRoot, 'tests/fixtures/ttt-reference');

const allDtypes: Record<string, Tensor> = {
  f64: { dtype: 'F64', shape: [2, 2], data: new Float64Array([1.5, -2, Math.PI, 1e-300]) },
  f32: { dtype: 'F32', shape: [3], data: new Float32Array([0.25, -1, 3e38]) },
  // 1, -2, 0.5, 65504 (max half), 2^-24 (smallest subnormal), +Inf
  f16: { dtype: 'F16', shape: [6], data: new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00]) },
  // 1, -2, 3.140625
  bf16: { dtype: 'BF16', shape: [3], data: new Uint16Array([0x3f80, 0xc000, 0x4049]) },
  i64: { dtype: 'I64', shape: [2], data: new BigInt64Array([-5n, 2n ** 40n]) },
  i32: { dtype: 'I32', shape: [1, 2], data: new Int32Array([-7, 2 ** 30]) },
  i16: { dtype: 'I16', shape: [2], data: new Int16Array([-300, 300]) },
  i8: { dtype: 'I8', shape: [3], data: new Int8Array([-128, 0, 127]) },
  u64: { dtype: 'U64', shape: [1], data: new BigUint64Array([2n ** 63n]) },
  u32: { dtype: 'U32', shape: [2], data: new Uint32Array([0, 2 ** 32 - 1]) },
  u16: { dtype: 'U16', shape: [2], data: new Uint16Array([1, 65535]) },
  u8: { dtype: 'U8', shape: [5], data: new Uint8Array([0, 1, 2, 3, 255]) },
  bool: { dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
  scalar: { dtype: 'F32', shape: [], data: new Float32Array([42]) },
  empty: { dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
};

/** A file built by hand, so tests can break it in ways the writer never would. */
function rawFile(header: unknown, dataBytes: number, headerPadding = 0): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header) + ' '.repeat(headerPadding));
  const out = new Uint8Array(8 + json.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  return out;
}

describe('safetensors round trip', () => {
  it('preserves every dtype, shape, value and the metadata', () => {
    const bytes = writeSafetensors(allDtypes, { purpose: 'test', n: '3' });
    const file = readSafetensors(bytes, 'roundtrip');
    expect(file.metadata).toEqual({ purpose: 'test', n: '3' });
    expect([...file.tensors.keys()].sort()).toEqual(Object.keys(allDtypes).sort());
    for (const [name, tensor] of Object.entries(allDtypes)) {
      const back = file.get(name, tensor.shape);
      expect(back.dtype).toBe(tensor.dtype);
      expect(back.data.constructor).toBe(tensor.data.constructor);
      expect(back.data).toEqual(tensor.data);
    }
  });

  it('aligns the data section so reads are zero-copy views', () => {
    const bytes = writeSafetensors(allDtypes);
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);
    for (const tensor of readSafetensors(bytes).tensors.values()) expect(tensor.data.buffer).toBe(bytes.buffer);
  });

  it('copies tensors whose bytes are misaligned', () => {
    // A 1-byte padded header puts the F64 data at an odd address.
    const bytes = rawFile({ x: { dtype: 'F64', shape: [2], data_offsets: [0, 16] } }, 16, 1);
    new DataView(bytes.buffer).setFloat64(bytes.length - 16, 1.25, true);
    new DataView(bytes.buffer).setFloat64(bytes.length - 8, -3, true);
    expect(readSafetensors(bytes).get('x').data).toEqual(new Float64Array([1.25, -3]));
    // Also when the caller's Uint8Array itself starts at an odd offset of its buffer.
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    expect(readSafetensors(shifted.subarray(1)).get('x').data).toEqual(new Float64Array([1.25, -3]));
  });

  it('accepts unsorted offsets', () => {
    const header = {
      b: { dtype: 'U8', shape: [1], data_offsets: [3, 4] },
      a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
    };
    const bytes = rawFile(header, 4);
    bytes.set([10, 11, 12, 13], bytes.length - 4);
    const file = readSafetensors(bytes);
    expect([...file.get('a').data]).toEqual([10, 11, 12]);
    expect([...file.get('b').data]).toEqual([13]);
  });

  it('refuses overlapping offsets, bytes of no tensor and duplicate names', () => {
    const u8 = (begin: number, end: number) => ({ dtype: 'U8', shape: [end - begin], data_offsets: [begin, end] });
    expect(() => readSafetensors(rawFile({ b: u8(2, 4), a: u8(0, 3) }, 4), 'f')).toThrow(
      "f: tensor 'b' (bytes 2..4) overlaps tensor 'a' (bytes 0..3)",
    );
    expect(() => readSafetensors(rawFile({ a: u8(0, 2), b: u8(0, 2) }, 2), 'f')).toThrow(/overlaps/);
    expect(() => readSafetensors(rawFile({ a: u8(0, 1), b: u8(2, 3) }, 3), 'f')).toThrow(
      "f: bytes 1..2 of the data section belong to no tensor (before tensor 'b')",
    );
    expect(() => readSafetensors(rawFile({ a: u8(0, 1) }, 3), 'f')).toThrow(
      'f: bytes 1..3 of the data section belong to no tensor',
    );
    // JSON.parse would keep only the second 'a'.
    const json =
      '{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    const twice = new Uint8Array(8 + json.length + 1);
    new DataView(twice.buffer).setBigUint64(0, BigInt(json.length), true);
    twice.set(new TextEncoder().encode(json), 8);
    expect(() => readSafetensors(twice, 'f')).toThrow("f: header names 'a' twice");
  });

  it('writes files atomically and reads them back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-safetensors-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'out.safetensors');
    await writeSafetensorsFile(path, { w: allDtypes.f32! }, { k: 'v' });
    const file = await readSafetensorsFile(path);
    expect(file.metadata).toEqual({ k: 'v' });
    expect(file.get('w', [3]).data).toEqual(allDtypes.f32!.data);

    const bad = { w: { dtype: 'F32', shape: [4], data: new Float32Array(3) } } as Record<string, Tensor>;
    await expect(writeSafetensorsFile(path, bad)).rejects.toThrow("tensor 'w' has 3 elements but shape [4] needs 4");
    // A directory in the way is refused before anything is written.
    mkdirSync(join(dir, 'sub'));
    await expect(writeSafetensorsFile(join(dir, 'sub'), { w: allDtypes.f32! })).rejects.toThrow(
      `${join(dir, 'sub')} is a directory; refusing to write over it`,
    );
    expect(readdirSync(dir).sort()).toEqual(['out.safetensors', 'sub']);
    expect(readSafetensors(readFileSync(path)).get('w').data).toEqual(allDtypes.f32!.data);
  });
});

describe('float conversion', () => {
  it('decodes F16 and BF16 exactly', () => {
    expect([...toFloat64(allDtypes.f16!)]).toEqual([1, -2, 0.5, 65504, 2 ** -24, Infinity]);
    expect([...toFloat32(allDtypes.bf16!)]).toEqual([1, -2, 3.140625]);
  });

  it('widens, narrows and converts integers', () => {
    expect(toFloat64(allDtypes.f32!)).toEqual(new Float64Array([0.25, -1, Math.fround(3e38)]));
    expect(toFloat32(allDtypes.f64!)).toEqual(Float32Array.from([1.5, -2, Math.PI, 1e-300]));
    expect([...toFloat64(allDtypes.i64!)]).toEqual([-5, 2 ** 40]);
    expect([...toFloat32(allDtypes.i8!)]).toEqual([-128, 0, 127]);
  });

  it('returns same-type data without copying', () => {
    expect(toFloat64(allDtypes.f64!)).toBe(allDtypes.f64!.data);
    expect(toFloat32(allDtypes.f32!)).toBe(allDtypes.f32!.data);
  });
});

describe('reference files', () => {
  it('reads the TTT-Linear reference with its metadata and shapes', async () => {
    const file = await readSafetensorsFile(join(referenceDir, 'linear_b2_h2_d64_k16_l64.safetensors'));
    expect(file.metadata).toMatchObject({
      kind: 'linear',
      batch: '2',
      heads: '2',
      head_dim: '64',
      mini_batch_size: '16',
      seq_len: '64',
      decode_steps: '24',
    });
    expect(file.get('weights.q_proj.weight', [128, 128]).dtype).toBe('F32');
    expect(file.get('weights.W1', [2, 64, 64]).dtype).toBe('F32');
    expect(file.get('kernel.XQ', [2, 2, 64, 64]).dtype).toBe('F64');
    expect(file.get('output.decode', [2, 24, 128]).dtype).toBe('F64');
    // token_eta = max(0, 1/(i+1) + learnable_token_idx[i]) per the folder's README.
    const idx = toFloat64(file.get('weights.learnable_token_idx', [16]));
    const eta = toFloat64(file.get('kernel.token_eta', [16]));
    eta.forEach((value, i) => expect(value).toBeCloseTo(Math.max(0, 1 / (i + 1) + idx[i]!), 6));
  });

  it('reads TTT-MLP and gated files', async () => {
    const mlp = await readSafetensorsFile(join(referenceDir, 'mlp_b2_h2_d64_k16_l64.safetensors'));
    expect(mlp.metadata.kind).toBe('mlp');
    expect(mlp.get('weights.W1', [2, 64, 256]).dtype).toBe('F32');
    expect(mlp.get('weights.W2', [2, 256, 64]).dtype).toBe('F32');

    const gate = await readSafetensorsFile(join(referenceDir, 'linear_gate_b1_h4_d32_k16_l40.safetensors'));
    expect(gate.metadata).toMatchObject({ use_gate: 'True', seq_len: '40' });
    expect(gate.get('weights.g_proj.weight', [128, 128]).dtype).toBe('F32');
    expect(gate.get('kernel.output', [1, 4, 32, 32]).dtype).toBe('F64'); // first 32 of 40 tokens
    expect(gate.get('output.layer', [1, 40, 128]).dtype).toBe('F64');
  });
});

describe('errors name the file and the problem', () => {
  const good = writeSafetensors({ t: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6) } });

  function readError(bytes: Uint8Array): string {
    try {
      readSafetensors(bytes, 'broken.safetensors');
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error('expected the read to fail');
  }

  it('reports truncation', () => {
    expect(readError(good.subarray(0, 5))).toMatch(/^broken\.safetensors: file is 5 bytes, too short .*truncated/);
    expect(readError(good.subarray(0, 20))).toMatch(
      /^broken\.safetensors: header length \d+ exceeds the 12 bytes .*truncated/,
    );
    expect(readError(good.subarray(0, good.length - 1))).toMatch(
      /^broken\.safetensors: tensor 't' has data_offsets \[0, 24\] beyond the 23-byte data section \(truncated file\?\)/,
    );
  });

  it('reports a corrupt header', () => {
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 2n ** 62n, true);
    expect(readError(huge)).toMatch(/^broken\.safetensors: header length 4611686018427387904 is implausible/);

    const garbled = good.slice();
    garbled[8] = 0x5b; // '[' in place of '{' breaks the JSON
    expect(readError(garbled)).toMatch(/^broken\.safetensors: header is not valid UTF-8 JSON: /);
    expect(readError(rawFile([1, 2], 0))).toBe('broken.safetensors: header is not a JSON object');
    expect(readError(rawFile({ __metadata__: { n: 3 } }, 0))).toBe(
      "broken.safetensors: __metadata__ value for 'n' is not a string",
    );
  });

  it('reports bad tensor entries', () => {
    const entry = (fields: object) =>
      readError(rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [0, 8], ...fields } }, 8));
    expect(entry({ dtype: 'Q4' })).toBe(
      'broken.safetensors: tensor \'t\' has unknown dtype "Q4"; supported: F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL',
    );
    expect(entry({ shape: [2, -1] })).toBe("broken.safetensors: tensor 't' has invalid shape [2,-1]");
    expect(entry({ data_offsets: [0] })).toBe("broken.safetensors: tensor 't' has invalid data_offsets [0]");
    expect(entry({ data_offsets: [8, 0] })).toBe(
      "broken.safetensors: tensor 't' has data_offsets [8, 0] that end before they begin",
    );
    expect(entry({ shape: [3] })).toBe("broken.safetensors: tensor 't' has 8 bytes of data but F32 [3] needs 12");
  });

  it('reports missing and mis-shaped tensors with what is there', () => {
    const file = readSafetensors(good, 'weights.safetensors');
    expect(() => file.get('t', [3, 2])).toThrow("weights.safetensors: tensor 't' has shape [2, 3], expected [3, 2]");
    expect(() => file.get('u')).toThrow("weights.safetensors: no tensor 'u'; available: t");
  });

  it('prefixes errors from files with their path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-safetensors-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'cut.safetensors');
    writeFileSync(path, good.subarray(0, good.length - 4));
    await expect(readSafetensorsFile(path)).rejects.toThrow(`${path}: tensor 't' has data_offsets`);
  });

  it('rejects tensors the writer cannot represent', () => {
    const wrongArray = { t: { dtype: 'F64', shape: [1], data: new Float32Array(1) } } as unknown as Record<
      string,
      Tensor
    >;
    expect(() => writeSafetensors(wrongArray)).toThrow(
      "writeSafetensors: tensor 't' has dtype F64 but its data is a Float32Array, not a Float64Array",
    );
    expect(() => writeSafetensors({ t: allDtypes.u8! }, { n: 3 } as unknown as Record<string, string>)).toThrow(
      "writeSafetensors: metadata value for 'n' is not a string",
    );
  });
});
