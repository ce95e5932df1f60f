/** Specs unlike the examples, to exercise the compiler's general paths (each is a valid layer). */
export const UNUSUAL_SPECS: Record<string, string> = {
  'abs, min, max, clamp, pow, outer, concat and a vector broadcast against a matrix': `
layer SmallBuiltins {
  dim D = 4
  dim E = 3
  minibatch K = 4
  state W: [D, E]
  state b: [E]
  state M: [D, D]
  param g: [D]
  fn f(x: [D]) -> [D] {
    let h = clamp(x @ W + b, -2, 2)
    let wide = concat(h, abs(x)) @ transpose(concat(W, M))
    return max(wide, -1) + min(x, 1) * pow(sigmoid(x), 3) + sum(outer(x, g) * M) * pow(1 + abs(x), -0.5)
  }
  loss(k: [D], v: [D]) = 0.5 * sum(square(f(k) - v))
  output(q: [D]) = f(q) + sum(W * b) * q
  update sgd(lr: token, scale: position)
}`,
  'views of different widths and a wider output': `
layer Widths {
  dim D = 6
  dim E = 5
  minibatch K = 3
  state W: [D, E]
  state U: [E, 7]
  loss(k: [D], v: [E]) = mean(square(k @ W - v))
  output(q: [D]) = tanh(q @ W) @ U
  update sgd(lr: token, scale: position)
}`,
  'a scalar state, constant rate and scale, gelu (erf) and sigmoid': `
layer Scalars {
  dim D = 5
  minibatch K = 4
  state W: [D, D]
  state c: []
  param g: [D, D]
  fn f(x: [D]) -> [D] = gelu(x @ W) * c + sigmoid(x @ g)
  loss(k: [D], v: [D]) = 0.5 * dot(f(k) - v, f(k) - v)
  output(q: [D]) = f(q)
  update sgd(lr: 0.3, scale: 0.5)
}`,
  'a state only the output reads, and the loss view read by the output too': `
layer OutputOnly {
  dim D = 4
  minibatch K = 2
  state W: [D, D]
  state R: [D, D]
  loss(k: [D], v: [D]) = sum(square(relu(k @ W) - v))
  output(q: [D], k: [D]) = q @ W + k @ R
  update sgd(lr: token, scale: none)
}`,
  'a state used twice in one expression, and exp/log/sqrt/rsqrt': `
layer Twice {
  dim D = 4
  minibatch K = 3
  state W: [D, D]
  state b: [D]
  fn f(x: [D]) -> [D] = (x @ W) @ W + b * b
  loss(k: [D], v: [D]) = log(1 + sum(exp(0.1 * f(k)) * rsqrt(1 + square(v)))) + sqrt(1 + sum(square(f(k) - v)))
  output(q: [D]) = f(q) / 2
  update sgd(lr: token, scale: position)
}`,
  'a primal matrix state next to a dual one, and a matrix-vector product': `
layer Mixed {
  dim D = 4
  minibatch K = 3
  state A: [D, D]
  state B: [D, D]
  fn f(x: [D]) -> [D] = transpose(B) @ (x @ A) + layernorm(x @ transpose(A), eps: 1e-3)
  loss(k: [D], v: [D]) = 0.5 * sum(square(f(k) - v))
  output(q: [D]) = f(q)
  update sgd(lr: token, scale: position)
}`,
  'a scalar view, a scalar output and a matrix parameter': `
layer ScalarTarget {
  dim D = 5
  minibatch K = 4
  state w: [D]
  state M: [D, D]
  param P: [D, D]
  fn predict(x: [D]) -> [] = dot(w, tanh(x @ M) @ P)
  loss(k: [D], y: []) = square(predict(k) - y)
  output(q: [D]) = predict(q)
  update sgd(lr: token, scale: position)
}`,
};
