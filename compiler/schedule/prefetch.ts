/**
 * Reading the next chunk's per-token inputs ahead, for a target with asynchronous global-to-on-chip
 * copies (CUDA's cp.async): while a chunk computes, the rows of the next one copy into a slot of
 * on-chip memory, and the next chunk stages them from there instead of from global memory (a wait
 * and a block barrier at each chunk's start make every thread's copies visible). Decided from
 * sizes, stages and the on-chip limits alone:
 *
 * - an input qualifies when it is staged (a buffered input of the chunk program: a view, a rate),
 *   global memory holds it as rows per token (the caller says so, and in how many bytes per
 *   element) and its rows are whole 16-byte copies (4 floats, or 8 bf16); the chunk's rows are
 *   then contiguous in global memory, and every copy's address is 16-byte aligned where the port's
 *   base is (the kernel checks that at run time, and stages from global memory where it is not);
 * - the slot holds the rows as global memory does, and takes their true bytes: an input stored as
 *   bf16 lands as bf16 in half the floats, and its stage widens it into its f32 buffer, so every
 *   reader of the buffer stays as it is without the read-ahead;
 * - its copies start after a block barrier at or after its stage (every warp has staged the current
 *   chunk from the slot by then), as a commit group of their own;
 * - its slot is on-chip memory that nothing touches while the copies may be in flight or the data
 *   waits: no stage after that barrier, and in the next chunk no stage up to the block barrier after
 *   its own stage, but its own stage, touches it (homes on chip and tensor-core staging count). That
 *   may be its own buffer where the slot holds f32 (the stage then copies each element onto itself,
 *   and zeroes rows past the chunk; bf16 rows there would be overwritten by other threads' widened
 *   floats before they read them), a gap between buffers, or, failing those, new memory after the
 *   scheduled memory, as long as the block stays within the target's limit and keeps every block
 *   per SM it had (`TargetLimits.multiprocessor`). The earliest barrier with such a slot is taken;
 *   an input with none is staged from global memory as before.
 *
 * The plan is the same whichever way the kernel walks the chunks: the rows read ahead are those of
 * the chunk it takes next (compiler/kernel/read-ahead.ts), the one before in a reverse walk. A
 * chunk of one row (decode) is left as it is: a call there is usually one token.
 */
import { chunkInputKey } from '../../core/mangle.ts';
import { elementBytes, type Port } from '../../core/signature.ts';
import { size } from '../ir/ir.ts';
import { acrossWarps } from './barriers.ts';
import type { PrefetchSlot, ScheduledKernel, TargetLimits } from './kernel.ts';
import { residentWorkgroups } from './layout.ts';
import { stageReads } from './reads.ts';
import { firstGap, homeSpans, overlaps, type Span } from './spans.ts';
import { copyFloats, stageStaging, tensorCoreStagingFloats } from './tensor-cores.ts';

/** Bytes per async copy. */
const COPY_BYTES = 16;
/** A slot starts at a multiple of 16 bytes. */
const COPY_FLOATS = COPY_BYTES / 4;

/**
 * The kernel with the inputs it can read ahead planned (`prefetch`), or unchanged when none can.
 * `stored` gives, by chunk-program key, the bytes per element of an input that global memory holds
 * as rows per token (4: f32, 2: bf16), and undefined for any other (one staged from elsewhere,
 * such as a backward's checkpoints).
 */
export function withPrefetch(
  k: ScheduledKernel,
  limits: TargetLimits,
  stored: (input: string) => number | undefined = () => 4,
): ScheduledKernel {
  if (k.chunk.rows <= 1) return k;
  const nodes = k.program.nodes;
  const touched = k.stages.map((_, i) => stageSpans(k, i));
  const copies = k.stages.map((_, i) => copySpans(k, i));
  const homes = homeSpans(k);
  const blocks = residentWorkgroups(limits, k.workgroupFloats * 4);
  const blockBarriers = k.barriers.flatMap((b, i) => (acrossWarps(b) ? [i] : []));
  const slots = new Map<number, PrefetchSlot>();
  const taken: Span[] = [];
  let workgroupFloats = k.workgroupFloats;
  k.stages.forEach((s, stage) => {
    if (s.kind !== 'compute') return;
    const op = nodes[s.node].op;
    const elementBytes = op.kind === 'input' ? stored(op.name) : undefined;
    if (elementBytes === undefined) return;
    const shape = nodes[s.node].shape;
    if (shape[0] !== k.chunk.rows || (size(shape.slice(1)) * elementBytes) % COPY_BYTES !== 0) return;
    // The slot's true size: the chunk's rows as global memory holds them.
    const floats = (size(shape) * elementBytes) / 4;
    const own = k.buffers.get(s.node)!;
    const ownSpan = own.space === 'workgroup' ? { from: own.offset, to: own.offset + size(shape) } : undefined;
    // The next chunk stages it up to the block barrier after its stage (the end of the chunk without one).
    const staged = blockBarriers.find((b) => b >= stage) ?? k.stages.length - 1;
    const ahead = [
      ...touched.slice(0, staged + 1).flatMap((spans, i) => (i === stage ? [] : spans)),
      ...copies.slice(0, staged + 1).flat(),
    ];
    for (const issueAfter of [...blockBarriers.filter((b) => b >= stage), undefined]) {
      const inFlight =
        issueAfter === undefined ? [] : [...touched.slice(issueAfter + 1), ...copies.slice(issueAfter + 1)].flat();
      const busy = [...homes, ...taken, ...ahead, ...inFlight];
      // Its own buffer where the slot holds f32 (its stage then copies each element onto itself),
      // else the first gap apart from it (a slot partly over it would be overwritten by other
      // threads' staging), else new memory.
      const ownFree =
        elementBytes === 4 && ownSpan && ownSpan.from % COPY_FLOATS === 0 && !busy.some((b) => overlaps(b, ownSpan));
      const offset = ownFree ? ownSpan.from : firstGap(ownSpan ? [...busy, ownSpan] : busy, floats);
      const end = Math.max(workgroupFloats, offset + floats);
      if (end > workgroupFloats && (end * 4 > limits.workgroupBytes || residentWorkgroups(limits, end * 4) < blocks)) {
        if (issueAfter !== undefined) continue;
        return;
      }
      slots.set(s.node, { offset, elementBytes, ...(issueAfter === undefined ? {} : { issueAfter }) });
      taken.push({ from: offset, to: offset + floats });
      workgroupFloats = end;
      return;
    }
  });
  if (slots.size === 0) return k;
  return { ...k, workgroupFloats, prefetch: slots };
}

/** `stored` for withPrefetch from a kernel's ports: its inputs with a token axis, by chunk-program key, in their element bytes. */
export function tokenRows(ports: readonly Port[]): (input: string) => number | undefined {
  const rows = ports.filter((p) => p.io === 'in' && p.lead.includes('T'));
  const bytes = new Map(rows.map((p) => [chunkInputKey(p), elementBytes(p)]));
  return (input) => bytes.get(input);
}

/** Block barriers per chunk the read-ahead adds: one after the wait at the chunk's start, one before copies that start at its end. */
export function prefetchBarriers(k: ScheduledKernel): number {
  if (!k.prefetch) return 0;
  return 1 + ([...k.prefetch.values()].some((s) => s.issueAfter === undefined) ? 1 : 0);
}

/** The on-chip memory a stage reads or writes: its buffers, and its tensor-core staging. */
function stageSpans(k: ScheduledKernel, i: number): Span[] {
  const s = k.stages[i];
  const ids = stageReads(s, k.program, (x) => k.buffers.has(x)).filter((x) => k.buffers.has(x));
  if (s.kind === 'compute') ids.push(s.node);
  const spans: Span[] = [];
  for (const id of ids) {
    const p = k.buffers.get(id)!;
    if (p.space === 'workgroup') spans.push({ from: p.offset, to: p.offset + size(k.program.nodes[id].shape) });
  }
  const staging = stageStaging(k, i);
  if (staging !== undefined) spans.push({ from: staging, to: staging + tensorCoreStagingFloats(k) });
  return spans;
}

/**
 * The views' copies live at a stage: each holds its rows from the view's staging (which writes it,
 * so a slot may not lie under it even there) to the last product that reads it.
 */
function copySpans(k: ScheduledKernel, i: number): Span[] {
  return [...(k.tensorCores?.copies ?? [])].flatMap(([node, c]) =>
    c.from <= i && i <= c.to ? [{ from: c.offset, to: c.offset + copyFloats(k, node) }] : [],
  );
}
