/**
 * Random valid specs, for checking what must hold for any spec on specs nobody wrote by hand:
 * an inner model of random depth mixing state matmuls, elementwise and scalar states, states
 * used non-linearly (primal form), norms, activations and a parameter; a random loss, read-out
 * and update.
 */
import { int, pick, rng } from './random.ts';

export function randomSpec(seed: number): string {
  // Small seeds start xorshift on small numbers: spread them and skip its first outputs.
  const r = rng(Math.imul(seed, 2654435761) ^ 0x9e3779b9);
  for (let i = 0; i < 8; i++) r();
  const D = int(r, 3, 4);
  const K = int(r, 2, 4);
  const states = ['state W: [D, D]'];
  const stateSteps: ((h: string) => string)[] = [(h) => `tanh(${h} @ W)`];
  const optional: [string, (h: string) => string][] = [
    ['state b: [D]', (h) => `${h} + b`],
    ['state s: [D]', (h) => `${h} * s`],
    ['state c: []', (h) => `${h} * c`],
    ['state U: [D, D]', (h) => `${h} @ l2norm(U)`],
    ['state V: [D, D]', (h) => `sigmoid(${h} @ V) @ transpose(V)`],
  ];
  for (const [decl, step] of optional)
    if (r() < 0.5) {
      states.push(decl);
      stateSteps.push(step);
    }
  const param = r() < 0.5;
  const plain: ((h: string) => string)[] = [
    (h) => `layernorm(${h})`,
    (h) => `rmsnorm(${h}, eps: 1e-3)`,
    (h) => `silu(${h})`,
    (h) => `gelu_tanh(${h})`,
    (h) => `gelu(${h})`,
    (h) => `0.5 * ${h} + x`,
    ...(param ? [(h: string) => `${h} * g`] : []),
  ];
  // Every state once, in a random order, with random state-free steps between.
  const steps = [...stateSteps].sort(() => r() - 0.5);
  const lets: string[] = [];
  let h = 'x';
  for (const step of steps) {
    for (let extra = int(r, 0, 1); extra > 0; extra--) {
      lets.push(`let h${lets.length} = ${pick(r, plain)(h)}`);
      h = `h${lets.length - 1}`;
    }
    lets.push(`let h${lets.length} = ${step(h)}`);
    h = `h${lets.length - 1}`;
  }
  const loss = pick(r, [
    '0.5 * sum(square(f(k) - v))',
    'sum(square(f(k) - v)) + 0.1 * sum(square(f(k)))',
    'log(1 + sum(square(f(k) - v)))',
  ]);
  const output = pick(r, ['f(q)', 'tanh(f(q))', 'f(q) + q']);
  const lr = pick(r, ['token', '0.2']);
  const scale = pick(r, ['position', 'none', '0.5']);
  return `layer Random${seed} {
  dim D = ${D}
  minibatch K = ${K}
  ${states.join('\n  ')}
  ${param ? 'param g: [D]' : ''}
  fn f(x: [D]) -> [D] {
    ${lets.join('\n    ')}
    return ${h}
  }
  loss(k: [D], v: [D]) = ${loss}
  output(q: [D]) = ${output}
  update sgd(lr: ${lr}, scale: ${scale})
}`;
}
