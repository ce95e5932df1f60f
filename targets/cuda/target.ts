/**
 * `tttc compile --target cuda`: the .cu (kernel and launcher), its header and the PyTorch binding,
 * and the backward's .cu and header (backward.ts).
 */
import type { Target } from '../target.ts';
import { renderCudaBackward } from './backward.ts';
import { renderCuda } from './render.ts';

export const cudaTarget: Target = {
  name: 'cuda',
  description: 'a fused CUDA kernel with a checked C launcher (.cu, .h) and a PyTorch binding (.py)',
  emit: (compiled, options) => [...renderCuda(compiled, options).files, ...renderCudaBackward(compiled, options).files],
};
