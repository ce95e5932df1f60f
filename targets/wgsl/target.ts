/**
 * `tttc compile --target wgsl`: the fused forward kernel, and the backward's two (wgsl/backward.ts);
 * each also as `NAME.subgroups.wgsl` where it has a subgroup variant (set its `subgroup_width`).
 */
import type { WgslSource } from '../../core/manifest.ts';
import { stem, type GeneratedFile, type Target } from '../target.ts';
import { renderWgslBackward } from './backward.ts';
import { renderWgsl } from './render.ts';

/** `NAME.wgsl`, and `NAME.subgroups.wgsl` where the kernel has a subgroup variant. */
const files = (name: string, k: WgslSource): GeneratedFile[] => [
  { path: `${name}.wgsl`, contents: k.code },
  ...(k.subgroup ? [{ path: `${name}.subgroups.wgsl`, contents: k.subgroup.code }] : []),
];

export const wgslTarget: Target = {
  name: 'wgsl',
  description: 'fused WGSL compute kernels for WebGPU (default limits): forward, checkpointing forward, backward',
  emit: (compiled) => [
    ...files(stem(compiled), renderWgsl(compiled)),
    ...files(`${stem(compiled)}.checkpoints`, renderWgsl(compiled, undefined, compiled.chunk, true)),
    ...files(`${stem(compiled)}.backward`, renderWgslBackward(compiled)),
  ],
};
