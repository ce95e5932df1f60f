/** `tttc compile --target wgsl`: the fused forward kernel, and the backward's two (wgsl/backward.ts). */
import { stem, type Target } from '../target.ts';
import { wgslBackwardFiles } from './backward.ts';
import { renderWgsl } from './render.ts';

export const wgslTarget: Target = {
  name: 'wgsl',
  description: 'fused WGSL compute kernels for WebGPU (default limits): forward, checkpointing forward, backward',
  emit: (compiled) => [
    { path: `${stem(compiled)}.wgsl`, contents: renderWgsl(compiled).code },
    ...wgslBackwardFiles(compiled),
  ],
};
