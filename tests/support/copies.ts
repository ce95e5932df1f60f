/**
 * What must hold of the views' bf16 copies a kernel keeps for tensor-core operands
 * (TensorCorePlan.copies, placed by compiler/schedule/tensor-core-placement.ts): each lies in the
 * block's memory, 16-byte aligned, written by its view's staging, and apart from everything else
 * that holds data while it does: the homes, the buffers a stage of its window touches, the other
 * copies live then, the tensor-core staging of the products in its window, and the slots that rows
 * read ahead land in meanwhile.
 */
import { expect } from 'vitest';
import type { ScheduledKernel } from '../../compiler/schedule/kernel.ts';
import { acrossWarps } from '../../compiler/schedule/barriers.ts';
import { stageReads } from '../../compiler/schedule/reads.ts';
import { homeSpans, overlaps, type Span } from '../../compiler/schedule/spans.ts';
import { copyFloats, productStage, tensorCoreStagingFloats } from '../../compiler/schedule/tensor-cores.ts';
import { size } from '../../core/shape.ts';

/** The spans that must not overlap a copy live from stage `from` to `to`, each with what it is. */
function neighbours(k: ScheduledKernel, node: number, from: number, to: number): [string, Span][] {
  const out: [string, Span][] = homeSpans(k).map((s) => ['a home', s]);
  for (let i = from; i <= to; i++) {
    const s = k.stages[i];
    const touched = stageReads(s, k.program, (x) => k.buffers.has(x)).filter((x) => k.buffers.has(x));
    if (s.kind === 'compute') touched.push(s.node);
    for (const id of touched) {
      const p = k.buffers.get(id)!;
      if (p.space === 'workgroup')
        out.push([`buffer %${id} at stage ${i}`, { from: p.offset, to: p.offset + size(k.program.nodes[id].shape) }]);
    }
  }
  for (const [id, offset] of k.tensorCores?.products ?? []) {
    const stage = productStage(k, id);
    if (from <= stage && stage <= to)
      out.push([`the staging of %${id}`, { from: offset, to: offset + tensorCoreStagingFloats(k) }]);
  }
  for (const [other, c] of k.tensorCores?.copies ?? [])
    if (other !== node && c.from <= to && from <= c.to)
      out.push([`the copy of %${other}`, { from: c.offset, to: c.offset + copyFloats(k, other) }]);
  // A slot holds rows landing for the next chunk from its copies' issue (after the block barrier
  // `issueAfter`) to the chunk's end, and in the next chunk up to the block barrier after its
  // input's staging, which reads it.
  const blockBarriers = k.barriers.flatMap((b, i) => (acrossWarps(b) ? [i] : []));
  for (const [id, slot] of k.prefetch ?? []) {
    const stage = k.stages.findIndex((s) => s.kind === 'compute' && s.node === id);
    const staged = blockBarriers.find((b) => b >= stage) ?? k.stages.length - 1;
    const landing = from <= staged || (slot.issueAfter !== undefined && to > slot.issueAfter);
    if (landing)
      out.push([
        `the slot of %${id}`,
        { from: slot.offset, to: slot.offset + (size(k.program.nodes[id].shape) * slot.elementBytes) / 4 },
      ]);
  }
  return out;
}

export function expectCopiesApart(k: ScheduledKernel, label: string): void {
  for (const [node, c] of k.tensorCores?.copies ?? []) {
    const span = { from: c.offset, to: c.offset + copyFloats(k, node) };
    expect(c.offset % 4, label).toBe(0);
    expect(span.to, label).toBeLessThanOrEqual(k.workgroupFloats);
    expect(k.stages[c.from], label).toMatchObject({ kind: 'compute', node });
    for (const [what, other] of neighbours(k, node, c.from, c.to))
      expect(overlaps(span, other), `${label}: the copy of %${node} over ${what}`).toBe(false);
  }
}
