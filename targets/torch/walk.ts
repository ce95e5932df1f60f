/**
 * The mini-batch walk of core/walk.ts in Python, for generated modules that walk chunks
 * themselves. It is the same recurrence line for line (count, ends, then position advances
 * modulo K); tests/torch-grad.test.ts checks it against `chunks()` over many calls.
 */
export const PYTHON_CHUNKS = `def chunks(start, T, K, rows):
    """The chunks of a call of T tokens from position start of a mini-batch of K, each at most rows
    tokens inside one mini-batch: (token, position, count, ends) with ends when it reaches row K - 1."""
    out = []
    position = start
    token = 0
    while token < T:
        count = min(rows, K - position, T - token)
        out.append((token, position, count, position + count == K))
        token += count
        position = (position + count) % K
    return out`;
