/**
 * The names of a layer's fused-backward launcher (`STEM_backward.cu`, `.h`): the one that runs a
 * whole training call, and its two halves, for callers that keep the checkpoints between the
 * forward and the backward (the PyTorch binding's autograd Function).
 */
import type { Compiled } from '../../compiler/pipeline.ts';
import { stem } from '../target.ts';
import { apiOf, type CudaApi } from './api.ts';

export interface BackwardApi extends CudaApi {
  /** Runs the checkpointing forward alone: writes the outputs and the checkpoints. */
  forwardCheckpoints: string;
  /** Runs the backward kernel alone, from the checkpoints a forward_checkpoints call wrote. */
  backwardFromCheckpoints: string;
  /** `size_t NAME(int T, int start)`: the chunks a call walks, the checkpoints' leading axis. */
  chunks: string;
}

/** `tttc_STEM_backward` runs both kernels; `forward` is that launcher, `kernel` the backward kernel. */
export function backwardApi(compiled: Compiled): BackwardApi {
  const api = apiOf(`${stem(compiled)}_backward`);
  const prefix = `tttc_${stem(compiled)}`;
  return {
    ...api,
    kernel: `${prefix}_backward_kernel`,
    decodeKernel: `${prefix}_checkpoints_kernel`,
    forward: `${prefix}_backward`,
    forwardCheckpoints: `${prefix}_forward_checkpoints`,
    backwardFromCheckpoints: `${prefix}_backward_from_checkpoints`,
    chunks: `${prefix}_backward_chunks`,
  };
}
