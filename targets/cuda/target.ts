/**
 * `tttc compile --target cuda`: the .cu (kernel and launcher), its header, the PyTorch binding (.py)
 * and the generated backward it differentiates with (STEM_backward.py).
 */
import type { Target } from '../target.ts';
import { backwardModule, renderTorchBackward } from '../torch/backward.ts';
import { renderCuda } from './render.ts';

export const cudaTarget: Target = {
  name: 'cuda',
  description: 'a fused CUDA kernel with a checked C launcher (.cu, .h) and a differentiable PyTorch binding (.py)',
  emit: (compiled, options) => [
    ...renderCuda(compiled, options).files,
    { path: backwardModule(compiled), contents: renderTorchBackward(compiled) },
  ],
};
