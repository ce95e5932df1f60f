/** Specs whose names collide with the generated code's own: each must compile for every target. */
export const NAME_SPECS: Record<string, string> = {
  'states W and out_W': `
layer Collide {
  dim D = 4
  minibatch K = 3
  state W: [D, D]
  state out_W: [D, D]
  state state_W: [D]
  loss(k: [D], v: [D]) = 0.5 * sum(square(k @ W + k @ out_W + state_W - v))
  output(q: [D]) = q @ W + tanh(q @ out_W) + state_W
  update sgd(lr: token, scale: position)
}`,
  'views named lr and scale, a param named start, dims named B, T and H': `
layer Names {
  dim B = 4
  dim T = 3
  dim H = 5
  minibatch K = 4
  state W: [B, H]
  state out_W: [H, T]
  param start: [T]
  loss(lr: [B], v: [T]) = mean(square((lr @ W) @ out_W - v))
  output(scale: [B]) = tanh(scale @ W) @ out_W + start
  update sgd(lr: token, scale: position)
}`,
};
