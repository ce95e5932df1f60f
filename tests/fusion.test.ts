/**
 * What fusion (compiler/schedule/fusion.ts) gives a buffer. A value read through a broadcast is
 * read once per element of the broadcast: one that is not cheap to recompute is computed once and
 * buffered, not inlined into every element (a LayerNorm's per-row reciprocal standard deviation
 * would otherwise cost a square root and a division per element of its row). Checked over every
 * example and rule example, forward and decode, against the nodes' own costs computed here.
 */
import { describe, expect, it } from 'vitest';
import { type Program, size } from '../compiler/ir/ir.ts';
import { inlineCost } from '../compiler/schedule/fusion.ts';
import { schedule } from '../compiler/schedule/schedule.ts';
import { WEBGPU_DEFAULT_LIMITS } from '../targets/wgsl/render.ts';
import { compileExample, exampleFiles } from './support/specs.ts';

const specs = [
  ...exampleFiles,
  ...['gated_deltanet', 'lact_swiglu', 'per_state_rates', 'titans_mlp_memory', 'ttt_mlp_noncausal'].map(
    (r) => `rules/${r}.ttt`,
  ),
];
/** Above this many terms an element, a value read more than once is not recomputed (fusion.ts CHEAP_TO_REPEAT). */
const CHEAP = 3;

/** The nodes read through a broadcast: each, with how many times larger the broadcast is. */
function broadcastReads(p: Program): Map<number, number> {
  const out = new Map<number, number>();
  for (const n of p.nodes) {
    if (n.op.kind !== 'expand') continue;
    let source = n.args[0];
    // Through the reshapes between, which do not change the elements.
    while (p.nodes[source].op.kind === 'reshape') source = p.nodes[source].args[0];
    const factor = size(n.shape) / size(p.nodes[source].shape);
    if (factor > 1) out.set(source, Math.max(out.get(source) ?? 1, factor));
  }
  return out;
}

describe('fusion', () => {
  it('computes a costly value that a broadcast reads once, not once per element of the broadcast', () => {
    let seen = 0;
    for (const spec of specs) {
      const c = compileExample(spec);
      for (const v of c.variants) {
        const k = schedule(v.chunk, WEBGPU_DEFAULT_LIMITS);
        const p = k.program;
        const cost: number[] = [];
        for (const n of p.nodes) cost[n.id] = k.buffers.has(n.id) ? 1 : inlineCost(n, cost);
        for (const [id, factor] of broadcastReads(p)) {
          const n = p.nodes[id];
          // Its terms an element were it inlined, its operands as they are.
          const terms = inlineCost(n, cost);
          if (['input', 'const', 'tril'].includes(n.op.kind) || terms <= CHEAP) continue;
          const at = `${spec} ${v.name}: %${id} (${n.op.kind}, ${terms} terms) read ${factor} times an element`;
          expect(k.buffers.has(id), at).toBe(true);
          seen++;
        }
      }
    }
    // The examples have such values (LayerNorm's statistics, masked rates, weight norms).
    expect(seen).toBeGreaterThan(20);
  });
});
