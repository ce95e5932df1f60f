/**
 * `tttc compile --target cuda`: the .cu (kernel and launcher), its header, the PyTorch binding (.py,
 * differentiated by the fused backward's .cu and header, backward.ts, or on request by the unfused
 * STEM_unfused_backward.py) and, for specs that fit the paper's sequence layer, that layer as a
 * torch.nn.Module (STEM_layer.py).
 */
import type { Target } from '../target.ts';
import { backwardModule, renderTorchBackward } from '../torch/backward.ts';
import { fitsLayer, layerModule, renderTorchLayer } from '../torch/layer.ts';
import { renderCudaBackward } from './backward.ts';
import { renderCuda } from './render.ts';

export const cudaTarget: Target = {
  name: 'cuda',
  description:
    'a fused CUDA kernel with a checked C launcher (.cu, .h), its fused backward, and a differentiable PyTorch binding (.py)',
  emit: (compiled, options) => {
    const forward = renderCuda(compiled, options).files;
    const paths = new Set(forward.map((f) => f.path));
    return [
      ...forward,
      // tttc_mma.cuh, where the forward's kernels and the backward's both call it, is emitted once.
      ...renderCudaBackward(compiled, options).files.filter((f) => !paths.has(f.path)),
      { path: backwardModule(compiled), contents: renderTorchBackward(compiled) },
      ...(fitsLayer(compiled) ? [{ path: layerModule(compiled), contents: renderTorchLayer(compiled) }] : []),
    ];
  },
};
