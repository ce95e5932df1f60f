/* tttc cuda-cpu: the part of c10/cuda/CUDAGuard.h a generated PyTorch binding uses, for CPU builds. */
#pragma once
#include "../../tttc_cuda_cpu.h"

namespace c10 {
namespace cuda {
/* There is one emulated device: selecting it changes nothing. */
struct CUDAGuard {
  template <class Device>
  explicit CUDAGuard(const Device&) {}
};
}  // namespace cuda
}  // namespace c10
