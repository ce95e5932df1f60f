/**
 * The warp-level matrix operations tttc's CUDA calls for tensor-core products, as one header the
 * generated .cu includes (shipped beside it as MMA_HEADER_FILE): mma.sync m16n8k16 with bf16
 * operands and f32 accumulation, m16n8k8 on tf32 split three ways (3xTF32, f32's accuracy),
 * ldmatrix (x1/x2/x4, plain and transposed), bf16x2 packing and cp.async, each a small device
 * function of inline PTX for sm_80 and later.
 *
 * Under tttc's CPU runtime (TTTC_CUDA_CPU) the same functions come from
 * runtime/cuda-cpu/include/tttc_cuda_cpu_mma.h, which emulates them on its warp exchange; the
 * fragment layouts are documented there and in the PTX ISA ("Matrix Fragments for mma.m16n8k16
 * with floating point type", "Warp-level matrix load instruction: ldmatrix", "cp.async").
 */

/** The name the generated .cu includes the header by ("tttc_mma.cuh", beside it). */
export const MMA_HEADER_FILE = 'tttc_mma.cuh';

export const MMA_HEADER = String.raw`/* tttc: warp-level matrix operations for tensor cores (sm_80 and later), as inline PTX.
 * Fragments (PTX ISA, mma.m16n8k16 bf16; g = lane / 4, t = lane % 4; a b32 register holds two bf16,
 * the lower-numbered element in its low half):
 *   A 16x16 row-major: a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..], a[2] = A[g][2t+8..], a[3] = A[g+8][2t+8..]
 *   B 16x8 col-major:  b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]
 *   C, D 16x8 f32:     c[0] = C[g][2t], c[1] = C[g][2t+1], c[2] = C[g+8][2t], c[3] = C[g+8][2t+1]
 * (mma.m16n8k8 tf32: a b32 register holds one tf32, and C and D are as above)
 *   A 16x8 row-major:  a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
 *   B 8x8 col-major:   b[0] = B[t][g], b[1] = B[t+4][g]
 * ldmatrix .m8n8 .b16: lanes 8i..8i+7 pass the 16-byte-aligned shared addresses of rows 0..7 of
 * matrix i; r[i] of lane l = matrix i, row l/4, columns 2(l%4)..+1 (.trans: the transpose).
 * So ldmatrix_x4 with lane l at &A[l % 16][8 * (l / 16)] yields A's fragment; ldmatrix_x2 with lane l
 * at &Bt[l % 8][8 * (l / 8)] (B stored n-major) or ldmatrix_x2_trans at &B[l % 16][0] (B stored
 * k-major) yields B's. Rows of 4 f32 give the tf32 fragments the same way: ldmatrix moves 16-bit
 * halves, and lane l's register is the f32 at column l%4 of its row. Every function is
 * warp-collective: all 32 lanes call it together. */
#ifndef TTTC_MMA_CUH
#define TTTC_MMA_CUH

#include <stdint.h>
#include <cuda_runtime.h>

#ifndef TTTC_CUDA_CPU /* tttc's CPU runtime emulates these (tttc_cuda_cpu_mma.h) */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "tttc_mma.cuh: mma.sync bf16, ldmatrix and cp.async need sm_80 or later"
#endif

/* nvcc's host pass compiles no device code: the PTX is emitted for the device passes only. */
#ifdef __CUDA_ARCH__
#define TTTC_PTX(...) asm volatile(__VA_ARGS__)
#else
#define TTTC_PTX(...)
#endif

__device__ __forceinline__ uint32_t tttc_shared_address(const void* p) {
  return (uint32_t)__cvta_generic_to_shared(p);
}

/* ---- bf16x2 packing: the low half holds lo (round to nearest even) ---- */
__device__ __forceinline__ uint32_t tttc_pack_bf16x2(float lo, float hi) {
  uint32_t r = 0;
  TTTC_PTX("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ float tttc_bf16x2_low(uint32_t r) { return __uint_as_float(r << 16); }
__device__ __forceinline__ float tttc_bf16x2_high(uint32_t r) { return __uint_as_float(r & 0xffff0000u); }

/* ---- ldmatrix ---- */
__device__ __forceinline__ void tttc_ldmatrix_x1(uint32_t (&r)[1], const void* row) {
  TTTC_PTX("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(tttc_shared_address(row)) : "memory");
}
__device__ __forceinline__ void tttc_ldmatrix_x2(uint32_t (&r)[2], const void* row) {
  TTTC_PTX("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];"
           : "=r"(r[0]), "=r"(r[1]) : "r"(tttc_shared_address(row)) : "memory");
}
__device__ __forceinline__ void tttc_ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  TTTC_PTX("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
           : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(tttc_shared_address(row)) : "memory");
}
__device__ __forceinline__ void tttc_ldmatrix_x1_trans(uint32_t (&r)[1], const void* row) {
  TTTC_PTX("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];" : "=r"(r[0]) : "r"(tttc_shared_address(row)) : "memory");
}
__device__ __forceinline__ void tttc_ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) {
  TTTC_PTX("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];"
           : "=r"(r[0]), "=r"(r[1]) : "r"(tttc_shared_address(row)) : "memory");
}
__device__ __forceinline__ void tttc_ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  TTTC_PTX("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
           : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(tttc_shared_address(row)) : "memory");
}

/* ---- D = A B + C: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (d may be c) ---- */
__device__ __forceinline__ void tttc_mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                       const float (&c)[4]) {
  TTTC_PTX("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
           "{%10, %11, %12, %13};"
           : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
             "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

/* ---- tf32: cvt.rna.tf32.f32 (nearest, ties away) and mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ---- */
__device__ __forceinline__ uint32_t tttc_tf32_rna(float x) {
  uint32_t r = 0;
  TTTC_PTX("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ void tttc_mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                      const float (&c)[4]) {
  TTTC_PTX("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
           "{%10, %11, %12, %13};"
           : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
             "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

/* ---- cp.async: 16 bytes from global to shared, in commit groups; wait<N> leaves N groups pending ---- */
__device__ __forceinline__ void tttc_cp_async_16(void* shared, const void* global) {
  TTTC_PTX("cp.async.cg.shared.global [%0], [%1], 16;" : : "r"(tttc_shared_address(shared)), "l"(global) : "memory");
}
__device__ __forceinline__ void tttc_cp_async_commit() { TTTC_PTX("cp.async.commit_group;" : : : "memory"); }
template <int pending>
__device__ __forceinline__ void tttc_cp_async_wait() {
  TTTC_PTX("cp.async.wait_group %0;" : : "n"(pending) : "memory");
}

#undef TTTC_PTX
#endif /* TTTC_CUDA_CPU */

/* ---- 3xTF32, over the operations above (or their emulation): D = A B + C for A and B held as f32
 * (m16n8k8 fragments). Each operand x splits into hi = tf32(x) and lo = tf32(x - hi), so hi + lo
 * is x within 2^-22 |x|; D = C + lo_a hi_b + hi_a lo_b + hi_a hi_b, the small terms first, dropping
 * lo_a lo_b (at most 2^-22 |a b|): f32's accuracy within a small factor, at three tf32 mma a step ---- */
template <int n>
__device__ __forceinline__ void tttc_split_tf32(const uint32_t (&x)[n], uint32_t (&hi)[n], uint32_t (&lo)[n]) {
  for (int i = 0; i < n; i++) {
    hi[i] = tttc_tf32_rna(__uint_as_float(x[i]));
    lo[i] = tttc_tf32_rna(__uint_as_float(x[i]) - __uint_as_float(hi[i]));
  }
}
__device__ __forceinline__ void tttc_mma_m16n8k8_tf32x3(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                                                        const float (&c)[4]) {
  uint32_t a_hi[4], a_lo[4], b_hi[2], b_lo[2];
  tttc_split_tf32(a, a_hi, a_lo);
  tttc_split_tf32(b, b_hi, b_lo);
  tttc_mma_m16n8k8_tf32(d, a_lo, b_hi, c);
  tttc_mma_m16n8k8_tf32(d, a_hi, b_lo, d);
  tttc_mma_m16n8k8_tf32(d, a_hi, b_hi, d);
}
#endif /* TTTC_MMA_CUH */
`;
