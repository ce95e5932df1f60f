/**
 * The mini-batch walk in reverse, from the one definition in core/walk.ts, which is defined
 * forward only: the kernel counts the chunks by walking forward, then for each chunk from the
 * last to the first replays the walk's steps up to it (integer steps only, uniform across the
 * workgroup), names its `count` and `ends` as the forward walk does, and processes it.
 */
import { WALK_STEP } from '../../core/walk.ts';
import { add, sub } from './affine.ts';
import { CHUNK_INDEX } from './checkpoint.ts';
import { type Stmt, assign, blank, comment, compare, constant, int, name, variable } from './ir.ts';
import { WALK_NAMES, type WalkInputs, walkExpr } from './walk.ts';

/** One step of the walk without processing the chunk: its count, then the next token and position. */
function advance(inputs: WalkInputs): Stmt[] {
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  return [
    constant(WALK_NAMES.count, 'index', e(WALK_STEP.count)),
    assign(WALK_NAMES.token, e(WALK_STEP.next.token)),
    assign(WALK_NAMES.position, e(WALK_STEP.next.position)),
  ];
}

/** Declares the walk's token and position and `counter`, the number of chunks of the call (kernels and launchers). */
export function lowerChunkCount(inputs: WalkInputs, counter: string): Stmt[] {
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  return [
    variable(WALK_NAMES.token, 'index', e(WALK_STEP.init.token)),
    variable(WALK_NAMES.position, 'index', e(WALK_STEP.init.position)),
    variable(counter, 'index', int(0)),
    {
      kind: 'while',
      condition: e(WALK_STEP.more),
      body: [...advance(inputs), assign(counter, add(name(counter), int(1)))],
    },
  ];
}

export function lowerReverseWalk(inputs: WalkInputs, chunk: readonly Stmt[]): Stmt[] {
  const step = WALK_STEP;
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  const index = name(CHUNK_INDEX);
  const restart = [assign(WALK_NAMES.token, e(step.init.token)), assign(WALK_NAMES.position, e(step.init.position))];
  return [
    comment('Count the chunks of the call.'),
    ...lowerChunkCount(inputs, CHUNK_INDEX),
    {
      kind: 'while',
      condition: compare('<', int(0), index),
      body: [
        assign(CHUNK_INDEX, sub(index, int(1))),
        comment('Walk forward to chunk `chunk_index`.'),
        ...restart,
        { kind: 'for', counter: 'walked', from: int(0), to: index, step: int(1), body: advance(inputs) },
        constant(WALK_NAMES.count, 'index', e(step.count)),
        constant(WALK_NAMES.ends, 'bool', e(step.ends)),
        ...chunk,
        blank,
      ],
    },
  ];
}
