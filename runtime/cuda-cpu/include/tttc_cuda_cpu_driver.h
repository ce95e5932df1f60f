/* tttc cuda-cpu: what a generated driver's main() needs to run a launcher on tensors from a file.
 *
 * Input file: "TTCI", int32 B, H, T, start, then for each of the launcher's tensors in the driver's
 * order a uint64 element count, followed by that many float32 values (bf16 bits, uint16, for a
 * tensor the driver takes with next_bf16) for a tensor the kernel reads (none for one it writes).
 * Output file: the written tensors' values, in the same order and types. Every tensor gets its own
 * exact-size device allocation; written ones start as NaN. */
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
  void* data;
  size_t count;
  /* Bytes per element: 4 (float32) or 2 (bf16 bits). */
  size_t width;
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
    Tensor& t = take(written, sizeof(float));
    if (written) fill_nan(static_cast<float*>(t.data), t.count);
    return static_cast<float*>(t.data);
  }

  /* The next tensor, stored as bf16 bits: read for an input, NaN (0x7fc0) for one the kernel writes. */
  uint16_t* next_bf16(bool written) {
    Tensor& t = take(written, sizeof(uint16_t));
    uint16_t* data = static_cast<uint16_t*>(t.data);
    if (written)
      for (size_t i = 0; i < t.count; i++) data[i] = 0x7fc0u;
    return data;
  }

  /* Workspace of `bytes`, NaN-filled like an output; NULL when none is needed. */
  float* scratch(size_t bytes) {
    if (bytes == 0) return nullptr;
    if (count_ == kMaxTensors) die("too many tensors", "");
    Tensor& t = tensors_[count_++];
    t = {device(bytes), bytes / sizeof(float), sizeof(float), false};
    fill_nan(static_cast<float*>(t.data), t.count);
    return static_cast<float*>(t.data);
  }

  void write_outputs() {
    FILE* out = fopen(out_path_, "wb");
    if (!out) die("cannot write ", out_path_);
    for (unsigned i = 0; i < count_; i++) {
      const Tensor& t = tensors_[i];
      if (t.written && fwrite(t.data, t.width, t.count, out) != t.count) die("cannot write ", out_path_);
    }
    if (fclose(out) != 0) die("cannot write ", out_path_);
  }

  int B, H, T, start;

 private:
  static constexpr unsigned kMaxTensors = 256;

  void read(void* p, size_t bytes) {
    if (fread(p, 1, bytes, in_) != bytes) die("the input file ends early", "");
  }
  /* The next tensor's allocation, its values read from the file when the kernel reads it. */
  Tensor& take(bool written, size_t width) {
    if (count_ == kMaxTensors) die("too many tensors", "");
    uint64_t n;
    read(&n, sizeof n);
    Tensor& t = tensors_[count_++];
    t = {device(n * width), (size_t)n, width, written};
    if (!written) {
      void* host = malloc(n * width + 1);
      read(host, n * width);
      cudaMemcpy(t.data, host, n * width, cudaMemcpyHostToDevice);
      free(host);
    }
    return t;
  }
  static void* device(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) die("out of memory", "");
    return p;
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
