/* tttc cuda-cpu: the warp-level matrix operations tttc's CUDA calls (targets/cuda/mma.ts holds
 * their inline-PTX definitions for nvcc), emulated on the warp exchange of tttc_cuda_cpu.h.
 *
 * Every function here is warp-collective, as its PTX instruction is (`.sync.aligned`): all 32 lanes
 * of the warp call it together. Each lane deposits its operands in the exchange, the lanes meet at
 * the warp's barrier, and each lane then reads what its fragment layout says it holds.
 *
 * Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type" and
 * "Warp-level matrix load instruction: ldmatrix"); g = lane / 4, t = lane % 4, a b32 register
 * holds two 16-bit elements, the lower-numbered column (or row, for B) in its low half:
 *   A 16x16 (row):  a[0] = A[g][2t..2t+1]   a[1] = A[g+8][2t..2t+1]
 *                   a[2] = A[g][2t+8..2t+9] a[3] = A[g+8][2t+8..2t+9]
 *   B 16x8 (col):   b[0] = B[2t..2t+1][g]   b[1] = B[2t+8..2t+9][g]
 *   C, D 16x8 f32:  c[0] = C[g][2t] c[1] = C[g][2t+1] c[2] = C[g+8][2t] c[3] = C[g+8][2t+1]
 *   mma.m16n8k8 tf32, a b32 register holding one tf32 (C and D as above):
 *   A 16x8 (row):   a[0] = A[g][t] a[1] = A[g+8][t] a[2] = A[g][t+4] a[3] = A[g+8][t+4]
 *   B 8x8 (col):    b[0] = B[t][g] b[1] = B[t+4][g]
 *   ldmatrix m8n8 b16: lanes 8i..8i+7 give the addresses of rows 0..7 of matrix i (16 bytes each);
 *   r[i] of lane l = matrix i, row l/4, columns 2(l%4)..2(l%4)+1; with .trans, the transpose:
 *   rows 2(l%4)..2(l%4)+1 of column l/4. x1/x2/x4 load 1/2/4 matrices.
 *
 * Rounding: bf16 products are exact in f32 (8-bit significands); the 16 products of one mma and C
 * are summed exactly here (in f64: 17 terms with 16-bit significands, exact unless their exponents
 * span more than ~37 binades) and rounded once to f32, to nearest even. That is the most accurate
 * result a tensor core may return: A100/H100 tensor cores align the products to the largest
 * exponent and truncate to a few bits beyond f32's significand before normalising (Fasi, Higham,
 * Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021). Hence:
 *   emulated:  |D - exact| <= 2^-24 |exact| per mma (one rounding);
 *   hardware:  |D - exact| <= 18 * 2^-23 (|C| + sum_k |A_ik B_kj|) per mma, read conservatively
 *              (each of the 17 aligned terms truncated below one f32 ulp of the largest, plus
 *              the final normalisation); a k loop of s mma steps accumulates s such errors.
 * A GPU check of a kernel should allow the hardware bound, which covers the emulation.
 *
 * cp.async is emulated at the latest moment the PTX ISA allows: a copy is only recorded when
 * issued (its addresses checked), commit closes the thread's group, and wait_group N performs the
 * copies of every committed group but the N newest, in order. Neither a barrier nor the copy's
 * own thread reading the destination makes it land, so a kernel that reads a buffer before
 * waiting for its group reads what was there before: a missing wait shows as wrong results.
 */
#ifndef TTTC_CUDA_CPU_MMA_H
#define TTTC_CUDA_CPU_MMA_H

namespace tttc_cpu {

constexpr unsigned kFullWarp = 0xffffffffu;

/* Every lane's two 32-bit words, gathered through one exchange. */
inline void gather_pairs(uint32_t lo, uint32_t hi, uint32_t (&los)[kWarp], uint32_t (&his)[kWarp]) {
  const uint64_t* slots = exchange(kFullWarp, (uint64_t)hi << 32 | lo);
  for (unsigned l = 0; l < kWarp; l++) {
    los[l] = (uint32_t)slots[l];
    his[l] = (uint32_t)(slots[l] >> 32);
  }
}

/* ldmatrix rows and cp.async operands must be 16-byte aligned; a GPU faults otherwise. */
inline void check_aligned16(const char* what, const void* p) {
  if ((uintptr_t)p % 16 == 0) return;
  fprintf(stderr, "tttc cuda-cpu: %s %p is not 16-byte aligned\n", what, p);
  abort();
}

/* Every lane's A and B fragment registers (a[i][lane], b[i][lane]), gathered for an mma. */
struct Fragments {
  uint32_t a[4][kWarp];
  uint32_t b[2][kWarp];
};
inline Fragments gather_fragments(const uint32_t (&a)[4], const uint32_t (&b)[2]) {
  Fragments f;
  gather_pairs(a[0], a[1], f.a[0], f.a[1]);
  gather_pairs(a[2], a[3], f.a[2], f.a[3]);
  gather_pairs(b[0], b[1], f.b[0], f.b[1]);
  return f;
}

/* D = A B + C on this lane's four accumulator elements (C, D layout above): the `depth` products
 * and C summed in f64 and rounded once to f32. A(row, k) and B(k, col) read the gathered fragments. */
template <class ElementA, class ElementB>
inline void accumulate(float (&d)[4], const float (&c)[4], unsigned depth, ElementA A, ElementB B) {
  const unsigned g = lane() / 4, t = lane() % 4;
  float out[4];
  for (unsigned i = 0; i < 4; i++) {
    const unsigned row = g + 8 * (i / 2), col = 2 * t + i % 2;
    double sum = c[i];
    for (unsigned k = 0; k < depth; k++) sum += A(row, k) * B(k, col);
    out[i] = (float)sum;
  }
  for (unsigned i = 0; i < 4; i++) d[i] = out[i];
}

inline float bf16_low(uint32_t r) { return bf16_to_float((uint16_t)(r & 0xffffu)); }
inline float bf16_high(uint32_t r) { return bf16_to_float((uint16_t)(r >> 16)); }

/* ldmatrix .m8n8 .b16 of `count` matrices: every lane's row address, then each lane's share. */
inline void ldmatrix(uint32_t* r, unsigned count, bool trans, const void* row) {
  const uint64_t* slots = exchange(kFullWarp, (uint64_t)(uintptr_t)row);
  const void* rows[kWarp];
  for (unsigned l = 0; l < 8 * count; l++) {
    rows[l] = (const void*)(uintptr_t)slots[l];
    check_aligned16("ldmatrix row address", rows[l]);
  }
  const unsigned l = lane();
  for (unsigned i = 0; i < count; i++) {
    uint16_t e[2];
    for (unsigned h = 0; h < 2; h++) {
      /* (row, column) of the element within matrix i. */
      const unsigned m_row = trans ? 2 * (l % 4) + h : l / 4;
      const unsigned m_col = trans ? l / 4 : 2 * (l % 4) + h;
      memcpy(&e[h], static_cast<const char*>(rows[8 * i + m_row]) + 2 * m_col, 2);
    }
    r[i] = (uint32_t)e[1] << 16 | e[0];
  }
}

}  // namespace tttc_cpu

/* ---- bf16x2 packing: the low half holds `lo` (the lower-numbered element) ---------------------- */

inline uint32_t tttc_pack_bf16x2(float lo, float hi) {
  return (uint32_t)::tttc_cpu::float_to_bf16_rn(hi) << 16 | ::tttc_cpu::float_to_bf16_rn(lo);
}
inline float tttc_bf16x2_low(uint32_t r) { return ::tttc_cpu::bf16_low(r); }
inline float tttc_bf16x2_high(uint32_t r) { return ::tttc_cpu::bf16_high(r); }

/* ---- ldmatrix ---------------------------------------------------------------------------------- */

inline void tttc_ldmatrix_x1(uint32_t (&r)[1], const void* row) { ::tttc_cpu::ldmatrix(r, 1, false, row); }
inline void tttc_ldmatrix_x2(uint32_t (&r)[2], const void* row) { ::tttc_cpu::ldmatrix(r, 2, false, row); }
inline void tttc_ldmatrix_x4(uint32_t (&r)[4], const void* row) { ::tttc_cpu::ldmatrix(r, 4, false, row); }
inline void tttc_ldmatrix_x1_trans(uint32_t (&r)[1], const void* row) { ::tttc_cpu::ldmatrix(r, 1, true, row); }
inline void tttc_ldmatrix_x2_trans(uint32_t (&r)[2], const void* row) { ::tttc_cpu::ldmatrix(r, 2, true, row); }
inline void tttc_ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) { ::tttc_cpu::ldmatrix(r, 4, true, row); }

/* ---- mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: D = A B + C --------------------------- */

inline void tttc_mma_m16n8k16_bf16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  using namespace ::tttc_cpu;
  const Fragments f = gather_fragments(a, b);
  /* A[row][k] and B[k][col] from the lanes that hold them (layouts in the comment above). */
  auto A = [&](unsigned row, unsigned k) {
    const uint32_t r = f.a[row / 8 + 2 * (k / 8)][(row % 8) * 4 + (k % 8) / 2];
    return (double)(k % 2 ? bf16_high(r) : bf16_low(r));
  };
  auto B = [&](unsigned k, unsigned col) {
    const uint32_t r = f.b[k / 8][col * 4 + (k % 8) / 2];
    return (double)(k % 2 ? bf16_high(r) : bf16_low(r));
  };
  accumulate(d, c, 16, A, B);
}

/* ---- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: D = A B + C ---------------------------
 * A tensor core reads a tf32 operand's 19 high bits of its b32 register; the 8 products (exact in
 * f64: 11-bit significands) and C are summed and rounded once, as the bf16 mma above. 3xTF32
 * (tttc_mma_m16n8k8_tf32x3) is tttc_mma.cuh's own, over these two functions. */

namespace tttc_cpu {
inline double tf32_value(uint32_t r) { return __uint_as_float(r & 0xffffe000u); }
/* cvt.rna.tf32.f32: to 10 fraction bits, nearest with ties away from zero; infinities and NaN kept. */
inline uint32_t tf32_rna(float x) {
  const uint32_t u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & 0xffffe000u;
}
}  // namespace tttc_cpu

inline uint32_t tttc_tf32_rna(float x) { return ::tttc_cpu::tf32_rna(x); }

inline void tttc_mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  using namespace ::tttc_cpu;
  const Fragments f = gather_fragments(a, b);
  /* A[row][k] and B[k][col] from the lanes that hold them (layouts in the comment above). */
  auto A = [&](unsigned row, unsigned k) { return tf32_value(f.a[row / 8 + 2 * (k / 4)][(row % 8) * 4 + k % 4]); };
  auto B = [&](unsigned k, unsigned col) { return tf32_value(f.b[k / 4][col * 4 + k % 4]); };
  accumulate(d, c, 8, A, B);
}

/* ---- cp.async: 16-byte global-to-shared copies, performed by the wait that covers them (above) -- */

inline void tttc_cp_async_16(void* shared, const void* global) {
  ::tttc_cpu::check_aligned16("cp.async shared address", shared);
  ::tttc_cpu::check_aligned16("cp.async global address", global);
  ::tttc_cpu::block();  // a device built-in: only inside a launch
  ::tttc_cpu::tl_fiber->async_open.push_back({shared, global});
}
inline void tttc_cp_async_commit() {
  ::tttc_cpu::block();
  ::tttc_cpu::Fiber& f = *::tttc_cpu::tl_fiber;
  f.async_groups.push_back(std::move(f.async_open));
  f.async_open.clear();
}
template <int pending>
inline void tttc_cp_async_wait() {
  static_assert(pending >= 0, "cp.async.wait_group takes a count of groups left pending");
  ::tttc_cpu::block();
  auto& groups = ::tttc_cpu::tl_fiber->async_groups;
  const size_t done = groups.size() > (size_t)pending ? groups.size() - pending : 0;
  for (size_t g = 0; g < done; g++)
    for (const ::tttc_cpu::AsyncCopy& c : groups[g]) memcpy(c.shared, c.global, 16);
  groups.erase(groups.begin(), groups.begin() + done);
}

#endif /* TTTC_CUDA_CPU_MMA_H */
