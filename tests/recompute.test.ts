/**
 * Recomputation where on-chip memory overflows (compiler/schedule/recompute.ts): the scheduler may
 * give a kernel a program with values computed again late, and buffers for sums of products
 * computed early. Such a program must compute what the chunk's own program computes, in an order
 * the stages can follow, and it is kept only where less goes through global scratch.
 */
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../core/tensor.ts';
import { execute } from '../compiler/ir/execute.ts';
import { Builder, type Program, size } from '../compiler/ir/ir.ts';
import type { ScheduledKernel, TargetLimits } from '../compiler/schedule/kernel.ts';
import { scratchTraffic, withLateCopy } from '../compiler/schedule/recompute.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { archOf } from '../targets/cuda/arch.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const specs = [
  ...exampleFiles,
  ...['gated_deltanet', 'lact_swiglu', 'per_state_rates', 'titans_mlp_memory', 'ttt_mlp_noncausal'].map(
    (r) => `rules/${r}.ttt`,
  ),
];
const sm90 = archOf('sm_90').limits;
const LIMITS: [string, TargetLimits][] = [
  ['WebGPU', WEBGPU_DEFAULT_LIMITS],
  ['sm_90', sm90],
  ['sm_90, 64 threads', { ...sm90, invocations: 64 }],
];

/** Seeded uniform values in [-1, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function randomInputs(p: Program, seed: number): Map<string, Tensor> {
  const next = random(seed);
  return new Map(
    p.inputs.map((i) => {
      const shape = p.nodes[i.node].shape;
      return [i.name, { shape, data: Float64Array.from({ length: size(shape) }, next) }];
    }),
  );
}

/** Nodes of the kernel's program that are not the chunk program's, counted by value (copies). */
const added = (k: ScheduledKernel) => k.program.nodes.length - k.chunk.program.nodes.length;

describe('recomputation where on-chip memory overflows', () => {
  it("gives kernels programs that compute the chunk program's outputs, in program order", () => {
    let changed = 0;
    for (const spec of specs) {
      const chunk = compileExample(spec).chunk;
      for (const [target, limits] of LIMITS) {
        const k = schedule(chunk, limits);
        const at = `${spec} on ${target}`;
        for (const n of k.program.nodes)
          expect(
            n.args.every((a) => a < n.id),
            at,
          ).toBe(true);
        if (k.program === chunk.program) continue;
        changed++;
        const inputs = randomInputs(chunk.program, 7);
        const want = execute(chunk.program, inputs);
        const got = execute(k.program, inputs);
        for (const [name, t] of want) expect([...got.get(name)!.data], `${at}: ${name}`).toEqual([...t.data]);
      }
    }
    // TTT-MLP, titans_mlp_memory, ttt_mlp_noncausal and lact_swiglu on sm_90, at least.
    expect(changed).toBeGreaterThanOrEqual(4);
  }, 120_000);

  it("keeps TTT-MLP's sm_90 prefill out of global scratch", () => {
    // Without recomputation GELU's three values (x², tanh, x/2), read by the inner loss's
    // backward, and a sum of four [16, 256] products of the output's dual form do not fit
    // beside the 128 KB of states: 4,096 floats a block went through scratch every mini-batch.
    const k = schedule(compileExample('ttt_mlp.ttt').chunk, sm90);
    expect(k.scratchFloats).toBe(0);
    expect(scratchTraffic(k)).toBe(0);
    expect(added(k)).toBeGreaterThan(0);
  });

  it('serves reads from a position on from copies placed before the first of them', () => {
    const b = new Builder();
    const x = b.input('x', [4, 4]);
    const w = b.input('w', [4, 4]);
    const t = b.unary('tanh', x);
    const plusOne = b.binary('add', t, b.const(1, [4, 4]));
    const early = b.matmul(t, w);
    const late = b.matmul(early, w);
    const out = b.binary('mul', late, plusOne);
    const p = b.build([{ name: 'out', node: out }]);
    // The tanh is buffered; `t + 1` is inlined where read, in `out`, after the late product.
    const buffered = new Set([x, w, t, early, late]);
    const { program: q, renamed } = withLateCopy(p, { node: t, from: late }, (id) => buffered.has(id))!;
    const at = (id: number) => renamed.get(id)!;
    expect(q.nodes.length).toBe(p.nodes.length + 2);
    // The copies of the tanh and of `t + 1` come just before `out`, their first reader from `late` on.
    const [tanh, inc] = [at(out) - 2, at(out) - 1];
    expect(q.nodes[tanh].op).toEqual({ kind: 'unary', fn: 'tanh' });
    expect(q.nodes[tanh].args).toEqual([at(x)]);
    expect(q.nodes[inc].args[0]).toBe(tanh);
    expect(q.nodes[at(out)].args).toEqual([at(late), inc]);
    // A reader before `late` keeps the original.
    expect(q.nodes[at(early)].args).toEqual([at(t), at(w)]);
    const inputs = randomInputs(p, 3);
    expect([...execute(q, inputs).get('out')!.data]).toEqual([...execute(p, inputs).get('out')!.data]);
    // Nothing reads the early product from `out` on: no copy.
    expect(withLateCopy(p, { node: early, from: out }, (id) => buffered.has(id))).toBeUndefined();
  });
});

describe('the program variants a compile finds', () => {
  it('do not depend on what else it scheduled before', () => {
    // The variant found under one target's memory is reused under its other limits: a kernel
    // rendered after others of the same chunk must be the one rendered alone.
    const options = [
      { arch: 'sm_90', dtype: 'tf32x3' },
      { arch: 'sm_80', dtype: 'f32' },
      { arch: 'sm_90', dtype: 'bf16' },
    ] as const;
    const shared = compileExample('ttt_mlp.ttt');
    const after = options.map((o) => renderCuda(shared, o).files.find((f) => f.path.endsWith('.cu'))!.contents);
    for (const [i, o] of options.entries()) {
      const alone = renderCuda(compileExample('ttt_mlp.ttt'), o).files.find((f) => f.path.endsWith('.cu'))!.contents;
      expect(after[i] === alone, `${o.arch} ${o.dtype}`).toBe(true);
    }
  }, 60_000);
});
