/** Random update rules for the rule tests: every option of semantics.md §6 on a model with every kind of state. */
import { int, pick, rng } from './random.ts';

/**
 * A random rule on a model with every kind of state: matrices in `x @ S` (dual form), a bias and
 * an elementwise factor (per-row copies), and a matrix used other than linearly (primal).
 */
export function randomRuleSpec(seed: number): string {
  // Spread small seeds apart and skip the first draws, which follow the seed closely.
  const r = rng(Math.imul(seed, 2654435761));
  for (let i = 0; i < 8; i++) r();
  const states = ['W1', 'b1', 'W2', 's', 'P'];
  const matrices = ['W1', 'W2', 'P'];
  const read = pick(r, ['causal', 'before', 'after'] as const);
  const decay = pick(r, [undefined, 'token', '0.9']);
  const momentum = pick(r, [undefined, 'token', '0.8']);
  const own = states.filter(() => r() < 0.5);
  const shared = own.length === states.length && r() < 0.5 ? undefined : pick(r, ['token', '0.05']);
  const args = [
    ...(shared ? [`lr: ${shared}`] : []),
    ...(decay ? [`decay: ${decay}`] : []),
    ...(momentum ? [`momentum: ${momentum}`] : []),
    `read: ${read}`,
  ];
  const block = own.map((st) => `lr ${st}: ${pick(r, ['token', '0.03'])}`);
  if (read !== 'causal') {
    const transforms: Record<string, string> = {
      W1: 'transpose(l2norm(transpose(W1))) * n1',
      b1: 'clamp(b1, -0.5, 0.5)',
      W2: 'W2 * 0.9 + 0.01 * outer(n1, g)',
      s: 'max(s, 0.1)',
      P: 'P - 0.1 * abs(P)',
    };
    for (const st of states) if (r() < 0.4) block.push(`commit ${st} = ${transforms[st]}`);
    if (!decay && !momentum)
      for (const m of matrices) if (r() < 0.5) block.push(`orthogonalize ${m}(steps: ${int(r, 1, 5)})`);
  }
  return `layer Random${seed} {
  dim D = 4
  dim H = 5
  minibatch K = 4
  state W1: [D, H]
  state b1: [H]
  state W2: [H, D]
  state s: [D]
  state P: [D, D]
  param g: [D]
  param n1: [H]
  fn f(x: [D]) -> [D] {
    let h = gelu_tanh(x @ W1 + b1)
    return x + rmsnorm(h @ W2) * g * s + x @ l2norm(P)
  }
  loss(k: [D], v: [D]) = 0.5 * sum(square(f(k) - v))
  output(q: [D]) = f(q)
  update sgd(${args.join(', ')}) {
    ${block.join('\n    ')}
  }
}
`;
}
