/**
 * `tttc/runtime/cuda-cpu`: generated CUDA built as host C++ and run on the CPU (Node only: it runs
 * g++ and the built program, so it is an entry of its own and the browser-clean runtime does not
 * load it).
 */
export { type CudaCpuMode, CudaCpuBuildError } from './build.ts';
export { CudaCpuBackward } from './backward.ts';
export { CudaCpuInnerLoop, CudaCpuRunError } from './inner-loop.ts';
export type { CudaCpuProgram, CudaTensorField } from './program.ts';
