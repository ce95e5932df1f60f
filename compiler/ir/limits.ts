/**
 * What a derived program may hold for the kernels to compile: constants that are finite f32
 * values (gradients and folding can make new ones from the spec's) and tensors that 32-bit
 * indices reach. The checker reports what it can see in the spec; this catches the rest.
 */
import { isF32 } from '../check/constants.ts';
import { MAX_INDEX } from '../check/limits.ts';
import { diag } from '../diagnostics/codes.ts';
import type { Diagnostic, Span } from '../diagnostics/diagnostic.ts';
import { type Program, size } from './ir.ts';

/** Diagnostics at the spec text each offending node comes from, else at `fallback`. */
export function programLimits(program: Program, fallback: Span): Diagnostic[] {
  const found: Diagnostic[] = [];
  for (const n of program.nodes) {
    const span = n.origin ?? fallback;
    if (n.op.kind === 'const' && !isF32(n.op.value))
      found.push(
        diag('TTT319', span, `a constant derived from this expression is ${n.op.value}, not a finite f32 value`),
      );
    else if (size(n.shape) > MAX_INDEX)
      found.push(diag('TTT320', span, `an intermediate of shape [${n.shape.join(', ')}] is beyond 32-bit indices`));
  }
  // One diagnostic per source location is enough.
  return found.filter((d, i) => found.findIndex((e) => e.span.start.offset === d.span.start.offset) === i);
}
