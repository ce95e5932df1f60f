/**
 * The mini-batch walk in reverse, from the one definition in core/walk.ts, which is defined
 * forward only: the kernel counts the chunks by walking forward, then for each chunk from the
 * last to the first replays the walk's steps up to it (integer steps only, uniform across the
 * workgroup), names its `count` and `ends` as the forward walk does, and processes it. The chunk
 * it takes after each is the one before (reverseOrder), which a read-ahead copies while it computes.
 */
import { WALK_STEP } from '../../core/walk.ts';
import { add, sub } from './affine.ts';
import { CHUNK_INDEX } from './checkpoint.ts';
import { type Stmt, assign, blank, comment, compare, constant, int, name, variable } from './ir.ts';
import { type ChunkOrder, WALK_NAMES, type WalkInputs, walkExpr } from './walk.ts';

/** One step of the walk without processing the chunk: its count, then the next token and position. */
function advance(inputs: WalkInputs): Stmt[] {
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  return [
    constant(WALK_NAMES.count, 'index', e(WALK_STEP.count)),
    assign(WALK_NAMES.token, e(WALK_STEP.next.token)),
    assign(WALK_NAMES.position, e(WALK_STEP.next.position)),
  ];
}

/** Named by a reverse walk that reads ahead (reverseOrder): the first tokens of the call's last chunk and of the chunk before the current one. */
const LAST_TOKEN = 'last_token';
const PREVIOUS_TOKEN = 'previous_token';

/**
 * Declares the walk's token and position and `counter`, the number of chunks of the call (kernels
 * and launchers); with `last`, also names the first token of the call's last chunk.
 */
export function lowerChunkCount(inputs: WalkInputs, counter: string, last?: string): Stmt[] {
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  return [
    variable(WALK_NAMES.token, 'index', e(WALK_STEP.init.token)),
    variable(WALK_NAMES.position, 'index', e(WALK_STEP.init.position)),
    variable(counter, 'index', int(0)),
    ...(last === undefined ? [] : [variable(last, 'index', int(0))]),
    {
      kind: 'while',
      condition: e(WALK_STEP.more),
      body: [
        ...(last === undefined ? [] : [assign(last, name(WALK_NAMES.token))]),
        ...advance(inputs),
        assign(counter, add(name(counter), int(1))),
      ],
    },
  ];
}

/**
 * The reverse walk's order: the call's last chunk first, then the one before each. Before the
 * walk `chunk_index` counts the call's chunks, and within it names the current one: either way,
 * the chunk read ahead exists where it is above 0.
 */
export function reverseOrder(): ChunkOrder {
  const exists = compare('<', int(0), name(CHUNK_INDEX));
  return { first: { token: name(LAST_TOKEN), exists }, next: { token: name(PREVIOUS_TOKEN), exists } };
}

/**
 * The chunks from the last to the first, each processed by `chunk`; `prologue` (the read-ahead's,
 * read-ahead.ts) runs once the chunks are counted, and where it is not empty the walk names the
 * tokens reverseOrder reads.
 */
export function lowerReverseWalk(inputs: WalkInputs, chunk: readonly Stmt[], prologue: readonly Stmt[] = []): Stmt[] {
  const step = WALK_STEP;
  const e = (x: Parameters<typeof walkExpr>[0]) => walkExpr(x, inputs);
  const index = name(CHUNK_INDEX);
  const ahead = prologue.length > 0;
  const restart = [assign(WALK_NAMES.token, e(step.init.token)), assign(WALK_NAMES.position, e(step.init.position))];
  return [
    comment('Count the chunks of the call.'),
    ...lowerChunkCount(inputs, CHUNK_INDEX, ahead ? LAST_TOKEN : undefined),
    ...prologue,
    {
      kind: 'while',
      condition: compare('<', int(0), index),
      body: [
        assign(CHUNK_INDEX, sub(index, int(1))),
        comment('Walk forward to chunk `chunk_index`.'),
        ...restart,
        ...(ahead ? [variable(PREVIOUS_TOKEN, 'index', int(0))] : []),
        {
          kind: 'for',
          counter: 'walked',
          from: int(0),
          to: index,
          step: int(1),
          body: [...(ahead ? [assign(PREVIOUS_TOKEN, name(WALK_NAMES.token))] : []), ...advance(inputs)],
        },
        constant(WALK_NAMES.count, 'index', e(step.count)),
        constant(WALK_NAMES.ends, 'bool', e(step.ends)),
        ...chunk,
        blank,
      ],
    },
  ];
}
