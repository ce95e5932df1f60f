/* tttc cuda-cpu: cuda_runtime_api.h for host C++ (see tttc_cuda_cpu.h). */
#include "tttc_cuda_cpu.h"
