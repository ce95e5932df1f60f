/**
 * The global memory a kernel's mini-batch loop (the walk's `while`) both reads and writes: a port
 * or the scratch slice read-modify-written through L2 every chunk, where on-chip memory would do.
 * The static report and the tests read it from the lowered kernel IR.
 */
import { type Buffer, type Kernel, type Stmt, everyExpr, nested } from './ir.ts';

/** A global buffer's name: `scratch`, or a port as `io.role.name`. */
function globalName(b: Buffer): string | undefined {
  if (b.kind === 'port') return `${b.port.io}.${b.port.role}.${b.port.name}`;
  return b.kind === 'scratch' ? 'scratch' : undefined;
}

/** The outermost `while` of a body: the mini-batch loop. */
function walkLoop(body: readonly Stmt[]): Stmt | undefined {
  const pending = [...body];
  while (pending.length > 0) {
    const s = pending.shift()!;
    if (s.kind === 'while') return s;
    pending.push(...nested(s));
  }
  return undefined;
}

/** The global buffers read and the global buffers written inside the mini-batch loop, and those both. */
export function loopGlobalTraffic(kernel: Kernel): { read: Set<string>; written: Set<string>; readWritten: string[] } {
  const loop = walkLoop(kernel.body);
  const read = new Set<string>();
  const written = new Set<string>();
  if (!loop) return { read, written, readWritten: [] };
  for (const e of everyExpr([loop])) {
    const n = e.kind === 'load' ? globalName(e.buffer) : undefined;
    if (n) read.add(n);
  }
  const pending: Stmt[] = [loop];
  while (pending.length > 0) {
    const s = pending.pop()!;
    const n = s.kind === 'store' ? globalName(s.buffer) : undefined;
    if (n) written.add(n);
    pending.push(...nested(s));
  }
  return { read, written, readWritten: [...read].filter((n) => written.has(n)).sort() };
}
