/**
 * The bank-conflict analysis of on-chip accesses (compiler/kernel/banks.ts) on hand-written
 * accesses whose wavefronts are known from the hardware rule (32 banks of 4 bytes, one word per
 * bank per wavefront, lanes reading one word share it), the layouts it chooses, and those layouts
 * in the examples' kernels. That swizzled kernels compute what the reference does is checked by
 * the kernel tests that run them (cuda-cpu*.test.ts, cuda-mma-kernels.test.ts, wgsl.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, div, mod, mul } from '../compiler/kernel/affine.ts';
import { layOutOnChip, onChipElement } from '../compiler/kernel/banks.ts';
import { type Expr, type Stmt, compare, float, int, load, name, store } from '../compiler/kernel/ir.ts';
import { lowerKernel } from '../compiler/kernel/lower.ts';
import { LITERALS, Index } from '../compiler/kernel/tensor-index.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { Lines } from '../targets/clike/lines.ts';
import { Printer } from '../targets/clike/print.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { CUDA_FEATURES } from '../targets/cuda/kernel.ts';
import { cuda } from '../targets/cuda/dialect.ts';
import { wgsl } from '../targets/wgsl/dialect.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';

const tid = name('tid');
const e = name('e');
const smem = { kind: 'workgroup' } as const;

/** `body` for e = tid, tid + 256, ... below `n` (256 invocations, as the targets launch). */
const elements = (n: number, body: Stmt[]): Stmt => ({
  kind: 'for',
  counter: 'e',
  from: tid,
  to: int(n),
  step: int(256),
  body,
});

/** The conflicts of one read `smem[index]` per element e < n. */
const reading = (n: number, index: Expr) =>
  layOutOnChip([elements(n, [store({ kind: 'scratch' }, e, load(smem, index))])]).rowMajor;

describe('bank conflicts of hand-written accesses', () => {
  it('consecutive words: one wavefront', () => {
    expect(reading(1024, e)).toMatchObject({ worst: 1, wavefrontsPerRequest: 1 });
  });

  it('a stride of 2 words: two lanes per bank', () => {
    expect(reading(512, mul(e, 2))).toMatchObject({ worst: 2, wavefrontsPerRequest: 2 });
  });

  it('a column of a 32-wide row-major buffer: 32 lanes in one bank', () => {
    expect(reading(32, mul(e, 32))).toMatchObject({ worst: 32, wavefrontsPerRequest: 32 });
  });

  it('a column of rows padded to 33 words: one wavefront', () => {
    expect(reading(32, mul(e, 33))).toMatchObject({ worst: 1, wavefrontsPerRequest: 1 });
  });

  it('every lane reading one word: a broadcast, one wavefront', () => {
    expect(reading(1024, add(int(7), mul(div(e, 1024), 32)))).toMatchObject({ worst: 1, wavefrontsPerRequest: 1 });
  });

  it('lanes masked off by a condition take no part', () => {
    // Lanes 0..3 read a column of a 64-wide buffer (4 in one bank); the rest are masked off.
    const body: Stmt[] = [
      elements(256, [
        {
          kind: 'if',
          condition: compare('<', e, int(4)),
          body: [store({ kind: 'scratch' }, e, load(smem, mul(e, 64)))],
        },
      ]),
    ];
    expect(layOutOnChip(body).rowMajor).toMatchObject({ worst: 4, requests: 1 });
  });

  it('weighs a request by how often a warp makes it', () => {
    // 2048 elements: 8 iterations of the invocations' loop, each a request of warp 0.
    expect(reading(2048, e).requests).toBe(8);
  });

  it('16-byte rows of ldmatrix: a quarter warp per phase, conflict-free when rows are padded by 16 bytes', () => {
    const rows = (stride: number): Stmt[] => [
      { kind: 'let', name: 'lane', type: 'index', value: mod(tid, 32), mutable: false },
      {
        kind: 'load-fragment',
        fragment: 'fa',
        role: 'a',
        index: mul(mod(name('lane'), 16), stride),
        elementBytes: 2,
        transpose: false,
      },
    ];
    // Rows of 16 bf16 (32 bytes): rows 0 and 4 of a phase share banks.
    expect(layOutOnChip(rows(16)).rowMajor).toMatchObject({ worst: 2, wavefrontsPerRequest: 2 });
    // Rows of 16 + 8 bf16, as schedule/tensor-cores.ts stages them: the eight rows of a phase cover all 32 banks.
    expect(layOutOnChip(rows(24)).rowMajor).toMatchObject({ worst: 1, wavefrontsPerRequest: 1 });
  });
});

describe('the layouts chosen', () => {
  /** A 64 x 64 buffer written along its rows and read down its columns, through on-chip elements. */
  const transposed = (): Stmt[] => {
    const at = (flat: Expr) => onChipElement('%1', Index.flat([64, 64], flat, LITERALS));
    const column = onChipElement('%1', Index.dims([64, 64], [mod(e, 64), div(e, 64)], LITERALS));
    return [
      elements(4096, [store(smem, at(e), float(1))]),
      elements(4096, [store({ kind: 'scratch' }, e, load(smem, column))]),
    ];
  };

  it('swizzle a buffer read down its columns, so writes and reads are both conflict-free', () => {
    const body = transposed();
    const layout = layOutOnChip(body);
    expect(layout.rowMajor.worst).toBe(32);
    expect(layout.chosen).toMatchObject({ worst: 1, wavefrontsPerRequest: 1 });
    expect(layout.swizzles).toEqual([{ buffer: '%1', width: 32, step: 1 }]);
    const L = new Lines();
    new Printer(cuda, { uniform: (n) => n, port: () => ({ array: 'x', index: int(0) }) }).statements(body, L);
    expect(L.toString()).toContain('smem[(e % 64) * 64 + ((e / 64) ^ ((e % 64) % 32))]');
  });

  it('a swizzled index visits every element of its row once', () => {
    const body = transposed();
    layOutOnChip(body);
    const first = body[0] as Stmt & { kind: 'for' };
    const index = (first.body[0] as Stmt & { kind: 'store' }).index;
    const value = (x: Expr, v: number): number => {
      if (x.kind === 'int') return x.value;
      if (x.kind === 'name') return v;
      if (x.kind === 'on-chip-element') return value(x.laidOut!, v);
      if (x.kind !== 'index') throw new Error(x.kind);
      const [a, b] = [value(x.a, v), value(x.b, v)];
      return { '+': a + b, '-': a - b, '*': a * b, '/': Math.floor(a / b), '%': a % b, '^': a ^ b }[x.op];
    };
    const seen = new Set<number>();
    for (let v = 0; v < 4096; v++) {
      const at = value(index, v);
      expect(Math.floor(at / 64)).toBe(Math.floor(v / 64));
      seen.add(at);
    }
    expect(seen.size).toBe(4096);
  });

  it('keeps row-major a buffer no access conflicts on', () => {
    const at = onChipElement('%2', Index.flat([64, 64], e, LITERALS));
    const layout = layOutOnChip([elements(4096, [store(smem, at, float(0))])]);
    expect(layout.swizzles).toEqual([]);
    expect(layout.chosen).toMatchObject({ worst: 1, wavefrontsPerRequest: 1 });
  });

  it('lays out elements that no sampled lane reaches', () => {
    const at = onChipElement('%3', Index.flat([64, 64], e, LITERALS));
    const body: Stmt[] = [
      elements(4096, [{ kind: 'if', condition: compare('<', e, int(0)), body: [store(smem, at, float(0))] }]),
    ];
    layOutOnChip(body);
    expect(at.kind === 'on-chip-element' && at.laidOut).toBeTruthy();
  });

  it('prints XOR parenthesised in both dialects', () => {
    const x: Expr = add(int(8), { kind: 'index', op: '^', a: e, b: mod(tid, 4) });
    for (const d of [cuda, wgsl])
      expect(new Printer(d, { uniform: (n) => n, port: () => ({ array: 'x', index: int(0) }) }).expr(x)).toBe(
        '8 + (e ^ (tid % 4))',
      );
  });
});

describe("the examples' kernels", () => {
  const source = readFileSync(join(import.meta.dirname, '../examples/ttt_linear.ttt'), 'utf8');
  const compiled = compileSpec(source, { file: 'ttt_linear.ttt' });
  if (!compiled.ok) throw new Error('ttt_linear.ttt does not compile');
  const c = compiled.compiled;

  it.each([
    ['wgsl', WEBGPU_DEFAULT_LIMITS, {}],
    ['cuda', archOf('sm_80').limits, { lanes: 32 }],
  ] as const)('%s: the chosen layouts leave fewer conflicts than row-major ones', (_, limits, features) => {
    const k = lowerKernel(schedule(c.chunk, limits), c.signature, source.split('\n'), features);
    expect(k.onChip.swizzles.length).toBeGreaterThan(0);
    expect(k.onChip.chosen.worst).toBeLessThan(k.onChip.rowMajor.worst);
    expect(k.onChip.chosen.wavefrontsPerRequest).toBeLessThan(k.onChip.rowMajor.wavefrontsPerRequest);
    expect(k.onChip.chosen.wavefrontsPerRequest).toBeLessThan(1.1);
  });
});

describe('the CUDA lowering', () => {
  it('keeps on-chip buffers row-major (a swizzle costs registers in unrolled loops) and still reports their conflicts', () => {
    const source = readFileSync(join(import.meta.dirname, '../examples/ttt_linear.ttt'), 'utf8');
    const compiled = compileSpec(source, { file: 'ttt_linear.ttt' });
    if (!compiled.ok) throw new Error('ttt_linear.ttt does not compile');
    const c = compiled.compiled;
    const k = lowerKernel(schedule(c.chunk, archOf('sm_80').limits), c.signature, source.split('\n'), CUDA_FEATURES);
    expect(k.onChip.swizzles).toEqual([]);
    expect(k.onChip.chosen).toEqual(k.onChip.rowMajor);
    expect(k.onChip.rowMajor.requests).toBeGreaterThan(0);
  });
});
