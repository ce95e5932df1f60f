/**
 * The mini-batch walk of core/walk.ts printed as a Python function, for generated modules that
 * walk chunks themselves: its lines come from `WALK_STEP`, the one definition the reference,
 * the runtime and the kernels also walk by (tests/torch-grad.test.ts checks it against `chunks()`).
 */
import { WALK_STEP, type WalkExpr } from '../../core/walk.ts';

const OPERATORS = { add: '+', sub: '-', mod: '%', eq: '==', lt: '<' } as const;

/** A walk expression in Python (its values are the function's arguments and locals, by name). */
function python(e: WalkExpr): string {
  if (typeof e !== 'object') return String(e);
  const [a, b] = e.args.map(python);
  return e.op === 'min' ? `min(${a}, ${b})` : `(${a} ${OPERATORS[e.op]} ${b})`;
}

export const PYTHON_CHUNKS = `def chunks(start, T, K, rows):
    """The chunks of a call of T tokens from position start of a mini-batch of K, each at most rows
    tokens inside one mini-batch: (token, position, count, ends) with ends when it reaches row K - 1."""
    out = []
    token = ${python(WALK_STEP.init.token)}
    position = ${python(WALK_STEP.init.position)}
    while ${python(WALK_STEP.more)}:
        count = ${python(WALK_STEP.count)}
        out.append((token, position, count, ${python(WALK_STEP.ends)}))
        token, position = ${python(WALK_STEP.next.token)}, ${python(WALK_STEP.next.position)}
    return out`;
