/* tttc cuda-cpu: what a generated driver's main() needs to run a launcher on tensors from a file.
 *
 * Input file: "TTCI", int32 B, H, T, start, then for each of the launcher's tensors in the driver's
 * order a uint64 element count, followed by that many float32 values for a tensor the kernel reads
 * (none for one it writes). Output file: the written tensors' float32 values, in the same order.
 * Every tensor gets its own exact-size device allocation; written ones start as NaN. */
#ifndef TTTC_CUDA_CPU_DRIVER_H
#define TTTC_CUDA_CPU_DRIVER_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tttc_cuda_cpu.h"

namespace tttc_cpu_driver {

[[noreturn]] inline void die(const char* what, const char* detail) {
  fprintf(stderr, "tttc cuda-cpu driver: %s%s\n", what, detail);
  exit(2);
}

struct Tensor {
  float* data;
  size_t count;
  bool written;
};

class Files {
 public:
  Files(const char* in, const char* out) : out_path_(out) {
    in_ = fopen(in, "rb");
    if (!in_) die("cannot read ", in);
    char magic[4];
    read(magic, 4);
    if (memcmp(magic, "TTCI", 4) != 0) die("not a tttc cuda-cpu input file: ", in);
    int sizes[4];
    read(sizes, sizeof sizes);
    B = sizes[0];
    H = sizes[1];
    T = sizes[2];
    start = sizes[3];
  }
  ~Files() {
    for (unsigned i = 0; i < count_; i++) cudaFree(tensors_[i].data);
    if (in_) fclose(in_);
  }

  /* The next tensor: read for an input, NaN for one the kernel writes. */
  float* next(bool written) {
    if (count_ == kMaxTensors) die("too many tensors", "");
    uint64_t n;
    read(&n, sizeof n);
    Tensor& t = tensors_[count_++];
    t = {device(n), (size_t)n, written};
    if (written) {
      fill_nan(t.data, t.count);
    } else {
      float* host = static_cast<float*>(malloc(n * sizeof(float) + 1));
      read(host, n * sizeof(float));
      cudaMemcpy(t.data, host, n * sizeof(float), cudaMemcpyHostToDevice);
      free(host);
    }
    return t.data;
  }

  /* Workspace of `bytes`, NaN-filled like an output; NULL when none is needed. */
  float* scratch(size_t bytes) {
    if (bytes == 0) return nullptr;
    if (count_ == kMaxTensors) die("too many tensors", "");
    Tensor& t = tensors_[count_++];
    t = {device(bytes / sizeof(float)), bytes / sizeof(float), false};
    fill_nan(t.data, t.count);
    return t.data;
  }

  void write_outputs() {
    FILE* out = fopen(out_path_, "wb");
    if (!out) die("cannot write ", out_path_);
    for (unsigned i = 0; i < count_; i++) {
      const Tensor& t = tensors_[i];
      if (t.written && fwrite(t.data, sizeof(float), t.count, out) != t.count) die("cannot write ", out_path_);
    }
    if (fclose(out) != 0) die("cannot write ", out_path_);
  }

  int B, H, T, start;

 private:
  static constexpr unsigned kMaxTensors = 256;

  void read(void* p, size_t bytes) {
    if (fread(p, 1, bytes, in_) != bytes) die("the input file ends early", "");
  }
  static float* device(size_t n) {
    void* p = nullptr;
    if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) die("out of memory", "");
    return static_cast<float*>(p);
  }
  static void fill_nan(float* p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
  }

  FILE* in_ = nullptr;
  const char* out_path_;
  Tensor tensors_[kMaxTensors];
  unsigned count_ = 0;
};

}  // namespace tttc_cpu_driver

#endif /* TTTC_CUDA_CPU_DRIVER_H */
