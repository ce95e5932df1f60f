/* tttc cuda-cpu: cuda_bf16.h for host C++ (see tttc_cuda_cpu.h). */
#include "tttc_cuda_cpu.h"
