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

export function lowerReverseWalk(inputs: WalkInputs, chunk: readonly Stmt[]): Stmt[] {
  const step = WALK_STEP;
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  const index = name(CHUNK_INDEX);
  const restart = [assign(WALK_NAMES.token, e(step.init.token)), assign(WALK_NAMES.position, e(step.init.position))];
  const advance = [
    constant(WALK_NAMES.count, 'index', e(step.count)),
    assign(WALK_NAMES.token, e(step.next.token)),
    assign(WALK_NAMES.position, e(step.next.position)),
  ];
  return [
    variable(WALK_NAMES.token, 'index', e(step.init.token)),
    variable(WALK_NAMES.position, 'index', e(step.init.position)),
    variable(CHUNK_INDEX, 'index', int(0)),
    comment('Count the chunks of the call.'),
    { kind: 'while', condition: e(step.more), body: [...advance, assign(CHUNK_INDEX, add(index, int(1)))] },
    {
      kind: 'while',
      condition: compare('<', int(0), index),
      body: [
        assign(CHUNK_INDEX, sub(index, int(1))),
        comment('Walk forward to chunk `chunk_index`.'),
        ...restart,
        { kind: 'for', counter: 'walked', from: int(0), to: index, step: int(1), body: advance },
        constant(WALK_NAMES.count, 'index', e(step.count)),
        constant(WALK_NAMES.ends, 'bool', e(step.ends)),
        ...chunk,
        blank,
      ],
    },
  ];
}
