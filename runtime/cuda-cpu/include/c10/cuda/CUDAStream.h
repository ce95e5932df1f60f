/* tttc cuda-cpu: the part of c10/cuda/CUDAStream.h a generated PyTorch binding uses, for CPU builds. */
#pragma once
#include "../../tttc_cuda_cpu.h"

namespace c10 {
namespace cuda {
/* Every stream is synchronous on the CPU: the default one stands for all. */
struct CUDAStream {
  operator cudaStream_t() const { return nullptr; }
};
inline CUDAStream getCurrentCUDAStream(int = -1) { return {}; }
}  // namespace cuda
}  // namespace c10
