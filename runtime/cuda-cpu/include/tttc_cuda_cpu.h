/* tttc's CUDA-on-the-CPU runtime: CUDA's built-ins for host C++, so that the CUDA source tttc
 * generates (kernel, launcher and all) compiles with g++ or clang and runs on the CPU.
 *
 * Each thread block runs its threads as cooperative fibers (ucontext) on the calling OS thread,
 * blocks one after another. A fiber runs until it waits (__syncthreads, a warp operation), so a
 * barrier is exact: no thread passes it before every live thread of its block has reached it.
 * Dynamic shared memory is a heap block of exactly the launch's size (AddressSanitizer sees any
 * overflow); built with -fsanitize=thread, barriers and warp operations tell ThreadSanitizer about
 * their happens-before edges and nothing else does, so shared-memory races between barriers show.
 *
 * Supported: threadIdx/blockIdx/blockDim/gridDim, __shared__ (static and, through
 * TTTC_DYNAMIC_SHARED, dynamic), __syncthreads and its count/and/or forms, __syncwarp,
 * __shfl*_sync, __ballot/__all/__any_sync, __activemask, atomics, bf16 and its conversions, the
 * float math the kernels use, the runtime calls a launcher makes (device memory is host memory;
 * launches are synchronous on every stream), and cudaLaunchKernelEx. The emulated device is
 * TTTC_CUDA_CPU_ARCH (e.g. 80, 90): its shared-memory limits are that architecture's.
 * The warp-level matrix operations (mma.sync m16n8k16 bf16, ldmatrix, cp.async) come from
 * tttc_cuda_cpu_mma.h, as the functions targets/cuda/mma.ts defines in inline PTX for nvcc.
 * Not yet: other inline PTX, wmma fragments, wgmma, TMA, cooperative groups, __launch_bounds__
 * checks at launch, blocks in parallel on several cores, races between blocks under
 * ThreadSanitizer (blocks run in order), textures, graphs, events.
 */
#ifndef TTTC_CUDA_CPU_H
#define TTTC_CUDA_CPU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <type_traits>
#include <utility>
#include <vector>

#define TTTC_CUDA_CPU 1
#ifndef TTTC_CUDA_CPU_ARCH
#define TTTC_CUDA_CPU_ARCH 90
#endif

#if defined(__SANITIZE_THREAD__)
#define TTTC_CUDA_CPU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TTTC_CUDA_CPU_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TTTC_CUDA_CPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TTTC_CUDA_CPU_ASAN 1
#endif
#endif
#ifdef TTTC_CUDA_CPU_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef TTTC_CUDA_CPU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* ---- Qualifiers ---------------------------------------------------------------------------- */

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)
/* Static shared arrays: one per OS thread, so every fiber of the running block shares it. */
#define __shared__ static thread_local
/* Dynamic shared memory, sized by the launch: `extern __shared__ T name[]` on a GPU. */
#define TTTC_DYNAMIC_SHARED(type, name) type* const name = static_cast<type*>(::tttc_cpu::dynamic_shared())

/* ---- Vector types ------------------------------------------------------------------------- */

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return {x, y, z}; }
};
struct float2 {
  float x, y;
};
struct float4 {
  float x, y, z, w;
};
struct int2 {
  int x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }

/* ---- The runtime's errors and types ----------------------------------------------------- */

enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorInvalidDevice = 101,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorLaunchFailure = 719,
};
typedef enum cudaError cudaError_t;
typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
struct cudaLaunchAttribute;
typedef struct cudaLaunchConfig_st {
  dim3 gridDim;
  dim3 blockDim;
  size_t dynamicSmemBytes;
  cudaStream_t stream;
  cudaLaunchAttribute* attrs;
  unsigned int numAttrs;
} cudaLaunchConfig_t;
struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t sharedMemPerBlock, sharedMemPerBlockOptin, totalGlobalMem;
  int multiProcessorCount, warpSize, maxThreadsPerBlock;
};

#define cudaStreamNonBlocking 0x01

namespace tttc_cpu {

/* The emulated device's limits, from the architecture the kernel was generated for. */
constexpr size_t kDefaultSharedBytes = 48 * 1024;
constexpr size_t opt_in_shared_bytes(int arch) {
  return (arch == 86 || arch == 89 ? 99 : arch >= 90 ? 227 : arch >= 80 ? 163 : arch >= 70 ? 96 : 48) * 1024;
}
constexpr size_t kOptInSharedBytes = opt_in_shared_bytes(TTTC_CUDA_CPU_ARCH);
constexpr unsigned kWarp = 32;
constexpr unsigned kMaxThreads = 1024;

}  // namespace tttc_cpu

/* ---- Built-in variables: per OS thread, set by the scheduler as it switches fibers --------- */

inline thread_local uint3 threadIdx = {0, 0, 0};
inline thread_local uint3 blockIdx = {0, 0, 0};
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

namespace tttc_cpu {

/* ---- Fibers -------------------------------------------------------------------------------- */

/* State the scheduler and the fibers share is read and written with relaxed atomics: ThreadSanitizer
 * then checks only the kernel's own memory, and learns of ordering only from barriers. */
template <class T>
inline T load(const T& x) {
  return __atomic_load_n(&x, __ATOMIC_RELAXED);
}
template <class T>
inline void store(T& x, T v) {
  __atomic_store_n(&x, v, __ATOMIC_RELAXED);
}
template <class T>
inline T add(T& x, T v) {
  return __atomic_add_fetch(&x, v, __ATOMIC_RELAXED);
}

#ifdef TTTC_CUDA_CPU_TSAN
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

#if defined(__x86_64__)
/* Saves the callee-saved registers and the FP control words on the current stack, stores its
 * pointer in *from and continues on the stack `to` (saved the same way, or made by new_stack). */
extern "C" void tttc_cpu_switch(void** from, void* to);
__asm__(
    ".text\n"
    ".weak tttc_cpu_switch\n"
    ".hidden tttc_cpu_switch\n"
    ".type tttc_cpu_switch,@function\n"
    "tttc_cpu_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size tttc_cpu_switch, .-tttc_cpu_switch\n");

struct Context {
  void* sp = nullptr;
};

/* A stack whose first switch "returns" into start(). */
inline void new_context(Context& c, char* stack, size_t bytes, void (*start)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + bytes) & ~(uintptr_t)15;
  uint64_t* sp = reinterpret_cast<uint64_t*>(top);
  *--sp = 0; /* start() never returns: a null return address ends backtraces */
  *--sp = reinterpret_cast<uint64_t>(start);
  for (int r = 0; r < 6; r++) *--sp = 0; /* rbp, rbx, r12-r15 */
  uint32_t control[2] = {__builtin_ia32_stmxcsr(), 0x037f};
  *--sp = 0;
  memcpy(sp, control, sizeof control);
  c.sp = sp;
}
/* `to` is read before the caller tells ThreadSanitizer of the switch, so the read is the switcher's. */
inline void* target(Context& to) { return to.sp; }
inline void switch_context(Context& from, void* to) { tttc_cpu_switch(&from.sp, to); }
#else
struct Context {
  ucontext_t uc;
};
inline void new_context(Context& c, char* stack, size_t bytes, void (*start)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, start, 0);
}
inline ucontext_t* target(Context& to) { return &to.uc; }
inline void switch_context(Context& from, ucontext_t* to) { swapcontext(&from.uc, to); }
#endif

/* One 16-byte cp.async (tttc_cuda_cpu_mma.h), performed when a wait covers its group. */
struct AsyncCopy {
  void* shared;
  const void* global;
};

struct Fiber {
  Context context;
  uint3 index;
  unsigned linear;
  bool done;
  char* stack;
  /* This thread's cp.async copies: those issued since its last commit, then its committed groups, oldest first. */
  std::vector<AsyncCopy> async_open;
  std::vector<std::vector<AsyncCopy>> async_groups;
#ifdef TTTC_CUDA_CPU_TSAN
  void* tsan;
#endif
#ifdef TTTC_CUDA_CPU_ASAN
  void* fake_stack;
#endif
};

/* A barrier among `expected` fibers: the last to arrive opens it. Two alternating sync objects tell
 * ThreadSanitizer that all arrivals precede all departures; one would also order a fiber's work
 * after this barrier before another fiber's departure from it. */
struct Barrier {
  unsigned arrived = 0;
  unsigned generation = 0;
  char sync[2] = {0, 0};
};

/* A warp's exchange slots for shuffles and votes: double-buffered by generation, so a lane reading
 * this operation's values cannot see the next operation's (which cannot open before it arrives). */
struct Warp {
  Barrier barrier;
  uint64_t slots[2][kWarp] = {};
};

struct Block {
  unsigned threads = 0;
  unsigned exited = 0;
  /* Bumped by every arrival and exit: a round of the scheduler without it is a deadlock. */
  unsigned long long progress = 0;
  Fiber* fibers = nullptr;
  Context scheduler;
#ifdef TTTC_CUDA_CPU_TSAN
  void* scheduler_tsan = nullptr;
  /* The scheduler's setup of a block precedes its threads; their ends precede the next block's setup. */
  char start_sync = 0;
  char done_sync = 0;
#endif
#ifdef TTTC_CUDA_CPU_ASAN
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_bytes = 0;
#endif
  void* shared = nullptr;
  Barrier barrier;
  /* __syncthreads_count's tallies, by barrier generation (see arrive_and_wait). */
  int counts[2] = {0, 0};
  Warp* warps = nullptr;
  void (*body)(void*) = nullptr;
  void* closure = nullptr;
};

inline thread_local Block* tl_block = nullptr;
inline thread_local Fiber* tl_fiber = nullptr;

inline Block& block() {
  if (tl_block == nullptr || tl_fiber == nullptr) {
    fprintf(stderr, "tttc cuda-cpu: a device built-in was used outside a kernel launch\n");
    abort();
  }
  return *tl_block;
}

inline void* dynamic_shared() { return block().shared; }

/* From the running fiber back to the scheduler; `exiting` when it will never run again. */
inline void to_scheduler(bool exiting) {
  Block& b = *tl_block;
  Fiber* f = tl_fiber;
  auto to = target(b.scheduler);
#ifdef TTTC_CUDA_CPU_TSAN
  /* An exit orders the thread's work before the scheduler's (the next launch reuses what it read);
   * fibers still learn of each other only through barriers, as the scheduler never syncs into one. */
  __tsan_switch_to_fiber(b.scheduler_tsan, exiting ? 0 : __tsan_switch_to_fiber_no_sync);
#endif
#ifdef TTTC_CUDA_CPU_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f->fake_stack, b.scheduler_stack, b.scheduler_stack_bytes);
#endif
  (void)exiting;
  switch_context(f->context, to);
#ifdef TTTC_CUDA_CPU_ASAN
  __sanitizer_finish_switch_fiber(f->fake_stack, nullptr, nullptr);
#endif
}

/* The scheduler's writes of the variables fibers read to know who they are (threadIdx, ...): the
 * kernel reads them plainly, so ThreadSanitizer must not see these writes as racing with it. */
template <class T>
inline void set_untracked(T& variable, T value) {
#ifdef TTTC_CUDA_CPU_TSAN
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
  variable = value;
#ifdef TTTC_CUDA_CPU_TSAN
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#endif
}

/* From the scheduler into fiber f, until it waits or ends. */
inline void to_fiber(Block& b, Fiber& f, size_t stack_bytes) {
  set_untracked(tl_fiber, &f);
  set_untracked(::threadIdx, f.index);
  auto to = target(f.context);
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_switch_to_fiber(f.tsan, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef TTTC_CUDA_CPU_ASAN
  __sanitizer_start_switch_fiber(&b.scheduler_fake_stack, f.stack, stack_bytes);
#endif
  (void)stack_bytes;
  switch_context(b.scheduler, to);
#ifdef TTTC_CUDA_CPU_ASAN
  __sanitizer_finish_switch_fiber(b.scheduler_fake_stack, nullptr, nullptr);
#endif
}

/* Opens a barrier whose every expected fiber has arrived (exited threads count for the block's). */
inline void open_barrier(Block& b, Barrier& bar, unsigned generation) {
  if (&bar == &b.barrier) store(b.counts[(generation + 1) & 1], 0);
  store(bar.arrived, 0u);
  store(bar.generation, generation + 1);
}

inline void arrive_and_wait(Barrier& bar, unsigned expected, bool counts_exited) {
  Block& b = block();
  const unsigned generation = load(bar.generation);
  char* sync = &bar.sync[generation & 1];
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_release(sync);
#endif
  add(b.progress, 1ull);
  if (add(bar.arrived, 1u) + (counts_exited ? load(b.exited) : 0u) >= expected) {
    open_barrier(b, bar, generation);
  } else {
    while (load(bar.generation) == generation) to_scheduler(false);
  }
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_acquire(sync);
#endif
  (void)sync;
}

inline void sync_block() {
  Block& b = block();
  arrive_and_wait(b.barrier, b.threads, true);
}

inline unsigned lane() {
  block();
  return tl_fiber->linear % kWarp;
}

inline Warp& warp() { return block().warps[tl_fiber->linear / kWarp]; }

/* A warp-level rendezvous of the lanes in `mask`: every one of them must call it. */
inline void sync_warp(unsigned mask) {
  const unsigned me = lane();
  if (!(mask >> me & 1u)) {
    fprintf(stderr, "tttc cuda-cpu: lane %u of warp %u called a warp operation with mask 0x%08x, which leaves it out\n",
            me, tl_fiber->linear / kWarp, mask);
    abort();
  }
  arrive_and_wait(warp().barrier, (unsigned)__builtin_popcount(mask), false);
}

/* Publishes this lane's value, waits for the lanes of `mask`, returns every lane's slot. */
inline const uint64_t* exchange(unsigned mask, uint64_t value) {
  Warp& w = warp();
  uint64_t* slots = w.slots[load(w.barrier.generation) & 1];
  slots[lane()] = value;
  sync_warp(mask);
  return slots;
}

template <class T>
inline uint64_t to_slot(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "a shuffled value is at most 8 bytes");
  uint64_t s = 0;
  memcpy(&s, &v, sizeof(T));
  return s;
}

template <class T>
inline T from_slot(uint64_t s) {
  T v;
  memcpy(&v, &s, sizeof(T));
  return v;
}

template <class T, class SourceLane>
inline T shuffle(unsigned mask, T value, SourceLane source) {
  const uint64_t* slots = exchange(mask, to_slot(value));
  const unsigned src = source(lane());
  /* Reading a lane outside the mask is undefined in CUDA; here it yields the caller's own value. */
  return from_slot<T>((mask >> src & 1u) ? slots[src] : slots[lane()]);
}

inline unsigned vote(unsigned mask, bool predicate) {
  const uint64_t* slots = exchange(mask, predicate ? 1 : 0);
  unsigned ballot = 0;
  for (unsigned l = 0; l < kWarp; l++)
    if ((mask >> l & 1u) && slots[l]) ballot |= 1u << l;
  return ballot;
}

/* ---- Launches ---------------------------------------------------------------------------- */

inline thread_local cudaError_t tl_last_error = cudaSuccess;
inline thread_local cudaError_t tl_sticky_error = cudaSuccess;

inline cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) tl_last_error = e;
  return e;
}

/* Dynamic shared memory each kernel opted in to (cudaFuncAttributeMaxDynamicSharedMemorySize).
 * Launches and attributes come from one host thread at a time, as the launchers make them. */
struct FuncAttribute {
  const void* func;
  size_t max_dynamic_shared;
};
inline FuncAttribute attributes[256];
inline unsigned attribute_count = 0;

inline size_t allowed_dynamic_shared(const void* func) {
  for (unsigned i = 0; i < attribute_count; i++)
    if (attributes[i].func == func) return attributes[i].max_dynamic_shared;
  return kDefaultSharedBytes;
}

inline cudaError_t set_dynamic_shared(const void* func, int bytes) {
  if (bytes < 0 || (size_t)bytes > kOptInSharedBytes) return record(cudaErrorInvalidValue);
  for (unsigned i = 0; i < attribute_count; i++)
    if (attributes[i].func == func) {
      attributes[i].max_dynamic_shared = (size_t)bytes;
      return cudaSuccess;
    }
  if (attribute_count == sizeof attributes / sizeof attributes[0]) return record(cudaErrorMemoryAllocation);
  attributes[attribute_count++] = {func, (size_t)bytes};
  return cudaSuccess;
}

/* Stacks are mapped once per launch and touched only as deep as a thread goes. */
#if defined(TTTC_CUDA_CPU_ASAN) || defined(TTTC_CUDA_CPU_TSAN)
constexpr size_t kStackBytes = 256 * 1024;
#else
constexpr size_t kStackBytes = 64 * 1024;
#endif

/* Where every fiber starts: the kernel, then the exit's bookkeeping; it never returns. */
inline void fiber_start() {
#ifdef TTTC_CUDA_CPU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &tl_block->scheduler_stack, &tl_block->scheduler_stack_bytes);
#endif
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_acquire(&tl_block->start_sync);
#endif
  Block& b = block();
  b.body(b.closure);
  store(tl_fiber->done, true);
  const unsigned exited = add(b.exited, 1u);
  add(b.progress, 1ull);
  /* An exit may complete the barrier the block's other threads are waiting at. */
  const unsigned arrived = load(b.barrier.arrived);
  if (arrived > 0 && arrived + exited >= b.threads) open_barrier(b, b.barrier, load(b.barrier.generation));
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_release(&b.done_sync);
#endif
  to_scheduler(true);
  __builtin_unreachable();
}

/* Runs one block to completion; false on a deadlock. */
inline bool run_block(Block& b, char* stacks) {
  for (unsigned t = 0; t < b.threads; t++) {
    Fiber& f = b.fibers[t];
    const dim3 d = ::blockDim;
    f.index = {t % d.x, t / d.x % d.y, t / (d.x * d.y)};
    f.linear = t;
    f.done = false;
    f.async_open.clear();
    f.async_groups.clear();
    f.stack = stacks + (size_t)t * kStackBytes;
    new_context(f.context, f.stack, kStackBytes, fiber_start);
#ifdef TTTC_CUDA_CPU_ASAN
    f.fake_stack = nullptr;
#endif
  }
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_release(&b.start_sync);
#endif
  bool ok = true;
  for (unsigned live = b.threads; live > 0 && ok;) {
    const unsigned long long before = load(b.progress);
    live = 0;
    for (unsigned t = 0; t < b.threads; t++) {
      Fiber& f = b.fibers[t];
      if (load(f.done)) continue;
      to_fiber(b, f, kStackBytes);
      if (!load(f.done)) live++;
    }
    ok = live == 0 || load(b.progress) != before;
  }
#ifdef TTTC_CUDA_CPU_TSAN
  __tsan_acquire(&b.done_sync);
#endif
  set_untracked(tl_fiber, (Fiber*)nullptr);
  return ok;
}

inline cudaError_t launch(const void* func, const cudaLaunchConfig_t& config, void (*body)(void*), void* closure) {
  const dim3 g = config.gridDim, d = config.blockDim;
  const unsigned long long threads = (unsigned long long)d.x * d.y * d.z;
  if (g.x == 0 || g.y == 0 || g.z == 0 || threads == 0 || threads > kMaxThreads || d.z > 64 ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535)
    return record(cudaErrorInvalidConfiguration);
  if (config.dynamicSmemBytes > allowed_dynamic_shared(func)) return record(cudaErrorInvalidValue);
  if (tl_block != nullptr) {
    fprintf(stderr, "tttc cuda-cpu: a kernel launched another kernel (dynamic parallelism is not supported)\n");
    return record(cudaErrorLaunchFailure);
  }
  const size_t stack_bytes = (size_t)threads * kStackBytes;
  void* stacks = mmap(nullptr, stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == MAP_FAILED) return record(cudaErrorMemoryAllocation);
  const unsigned warp_count = (unsigned)((threads + kWarp - 1) / kWarp);
  Fiber* fibers = new Fiber[threads];
  Warp* warps = new Warp[warp_count];
  cudaError_t result = cudaSuccess;
  Block b;
  b.threads = (unsigned)threads;
  b.fibers = fibers;
  b.warps = warps;
  b.body = body;
  b.closure = closure;
#ifdef TTTC_CUDA_CPU_TSAN
  /* One ThreadSanitizer fiber per thread index, reused by every block (creating them per block costs
   * seconds); blocks run in order, so races between blocks do not show, only those within one. */
  b.scheduler_tsan = __tsan_get_current_fiber();
  for (unsigned t = 0; t < threads; t++) fibers[t].tsan = __tsan_create_fiber(0);
#endif
  ::blockDim = d;
  ::gridDim = g;
  set_untracked(tl_block, &b);
  for (unsigned z = 0; z < g.z && result == cudaSuccess; z++)
    for (unsigned y = 0; y < g.y && result == cudaSuccess; y++)
      for (unsigned x = 0; x < g.x && result == cudaSuccess; x++) {
        set_untracked(::blockIdx, uint3{x, y, z});
        b.exited = 0;
        b.barrier = Barrier();
        b.counts[0] = b.counts[1] = 0;
        for (unsigned w = 0; w < warp_count; w++) warps[w] = Warp();
        /* Exactly the launch's bytes, filled with NaN bytes: shared memory starts undefined. */
        b.shared = config.dynamicSmemBytes > 0 ? malloc(config.dynamicSmemBytes) : nullptr;
        if (b.shared) memset(b.shared, 0xff, config.dynamicSmemBytes);
#ifdef TTTC_CUDA_CPU_ASAN
        /* Frames a previous block's fibers left poisoned must not trip this block's. */
        __asan_unpoison_memory_region(stacks, stack_bytes);
#endif
        if (!run_block(b, static_cast<char*>(stacks))) {
          fprintf(stderr,
                  "tttc cuda-cpu: deadlock in block (%u, %u, %u): every live thread waits at a barrier or warp "
                  "operation that the others never reach\n",
                  x, y, z);
          result = cudaErrorLaunchFailure;
        }
        free(b.shared);
      }
  set_untracked(tl_block, (Block*)nullptr);
#ifdef TTTC_CUDA_CPU_TSAN
  for (unsigned t = 0; t < threads; t++) __tsan_destroy_fiber(fibers[t].tsan);
#endif
  delete[] warps;
  delete[] fibers;
  munmap(stacks, stack_bytes);
  if (result != cudaSuccess) {
    tl_sticky_error = result;
    return record(result);
  }
  return cudaSuccess;
}

}  // namespace tttc_cpu

/* ---- Synchronisation and warp operations -------------------------------------------------- */

inline void __syncthreads() { ::tttc_cpu::sync_block(); }
inline int __syncthreads_count(int predicate) {
  ::tttc_cpu::Block& b = ::tttc_cpu::block();
  int& count = b.counts[::tttc_cpu::load(b.barrier.generation) & 1];
  if (predicate) ::tttc_cpu::add(count, 1);
  __syncthreads();
  return ::tttc_cpu::load(count);
}
inline int __syncthreads_and(int predicate) { return __syncthreads_count(predicate) == (int)::tttc_cpu::block().threads; }
inline int __syncthreads_or(int predicate) { return __syncthreads_count(predicate) > 0; }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::tttc_cpu::sync_warp(mask); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline unsigned __activemask() {
  ::tttc_cpu::Block& b = ::tttc_cpu::block();
  const unsigned first = ::tttc_cpu::tl_fiber->linear / ::tttc_cpu::kWarp * ::tttc_cpu::kWarp;
  unsigned mask = 0;
  for (unsigned l = 0; l < ::tttc_cpu::kWarp && first + l < b.threads; l++)
    if (!::tttc_cpu::load(b.fibers[first + l].done)) mask |= 1u << l;
  return mask;
}

template <class T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  return ::tttc_cpu::shuffle(mask, var, [=](unsigned l) { return (l & ~(unsigned)(width - 1)) + ((unsigned)src_lane & (width - 1)); });
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::tttc_cpu::shuffle(mask, var, [=](unsigned l) { return l % width >= delta ? l - delta : l; });
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::tttc_cpu::shuffle(mask, var, [=](unsigned l) { return l % width + delta < (unsigned)width ? l + delta : l; });
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  return ::tttc_cpu::shuffle(mask, var, [=](unsigned l) {
    const unsigned src = l ^ (unsigned)lane_mask;
    return src / width == l / width ? src : l;
  });
}
inline unsigned __ballot_sync(unsigned mask, int predicate) { return ::tttc_cpu::vote(mask, predicate != 0); }
inline int __all_sync(unsigned mask, int predicate) { return ::tttc_cpu::vote(mask, predicate != 0) == mask; }
inline int __any_sync(unsigned mask, int predicate) { return ::tttc_cpu::vote(mask, predicate != 0) != 0; }

/* Fibers of a block never preempt each other, but the sanitizers should see atomics as atomics. */
template <class T>
inline T tttc_cpu_atomic_update(T* address, T (*update)(T, T), T value) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(address, &old, update(old, value), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline float atomicAdd(float* a, float v) {
  static_assert(sizeof(float) == sizeof(uint32_t), "float is 32 bits");
  uint32_t* bits = reinterpret_cast<uint32_t*>(a);
  uint32_t old = __atomic_load_n(bits, __ATOMIC_RELAXED);
  for (;;) {
    float f;
    memcpy(&f, &old, 4);
    f += v;
    uint32_t next;
    memcpy(&next, &f, 4);
    if (__atomic_compare_exchange_n(bits, &old, next, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
      memcpy(&f, &old, 4);
      return f;
    }
  }
}
inline int atomicAdd(int* a, int v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }
inline int atomicSub(int* a, int v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }
inline int atomicExch(int* a, int v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
inline unsigned atomicExch(unsigned* a, unsigned v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }
inline int atomicCAS(int* a, int expected, int v) {
  __atomic_compare_exchange_n(a, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}
inline unsigned atomicCAS(unsigned* a, unsigned expected, unsigned v) {
  __atomic_compare_exchange_n(a, &expected, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}
inline int atomicMax(int* a, int v) { return tttc_cpu_atomic_update<int>(a, [](int x, int y) { return x > y ? x : y; }, v); }
inline int atomicMin(int* a, int v) { return tttc_cpu_atomic_update<int>(a, [](int x, int y) { return x < y ? x : y; }, v); }

/* ---- Math ---------------------------------------------------------------------------------- */

/* CUDA's min and max take mixed arithmetic types and return their common type. */
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return (C)a < (C)b ? (C)a : (C)b;
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return (C)a > (C)b ? (C)a : (C)b;
}
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __tanhf(float x) { return tanhf(x); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fmaf_rn(float x, float y, float z) { return fmaf(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
inline int __float_as_int(float x) {
  int i;
  memcpy(&i, &x, 4);
  return i;
}
inline unsigned __float_as_uint(float x) {
  unsigned u;
  memcpy(&u, &x, 4);
  return u;
}
inline float __int_as_float(int i) {
  float x;
  memcpy(&x, &i, 4);
  return x;
}
inline float __uint_as_float(unsigned u) {
  float x;
  memcpy(&x, &u, 4);
  return x;
}

/* ---- bf16 ---------------------------------------------------------------------------------- */

namespace tttc_cpu {
/* Round to nearest, ties to even; NaN stays a (quiet) NaN. */
inline uint16_t float_to_bf16_rn(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_to_float(uint16_t b) {
  const uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
}  // namespace tttc_cpu

struct __nv_bfloat16 {
  uint16_t __x;
  /* constexpr, so that a static __shared__ array of bf16 is constant-initialised: a dynamic
   * initialiser's guard is a thread_local byte every fiber of the block would race on. */
  constexpr __nv_bfloat16() : __x(0) {}
  __nv_bfloat16(float f) : __x(::tttc_cpu::float_to_bf16_rn(f)) {}
  __nv_bfloat16(double d) : __x(::tttc_cpu::float_to_bf16_rn((float)d)) {}
  __nv_bfloat16(int i) : __x(::tttc_cpu::float_to_bf16_rn((float)i)) {}
  operator float() const { return ::tttc_cpu::bf16_to_float(__x); }
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;
};
typedef __nv_bfloat16 nv_bfloat16;
typedef __nv_bfloat162 nv_bfloat162;

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
  __nv_bfloat16 b;
  b.__x = (uint16_t)(__float_as_uint(f) >> 16);
  return b;
}
inline float __bfloat162float(__nv_bfloat16 b) { return ::tttc_cpu::bf16_to_float(b.__x); }
inline __nv_bfloat162 __floats2bfloat162_rn(float a, float b) { return {__nv_bfloat16(a), __nv_bfloat16(b)}; }
inline __nv_bfloat162 __float2bfloat162_rn(float a) { return {__nv_bfloat16(a), __nv_bfloat16(a)}; }
inline float2 __bfloat1622float2(__nv_bfloat162 v) { return {(float)v.x, (float)v.y}; }
inline __nv_bfloat16 __hadd(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16((float)a + (float)b); }
inline __nv_bfloat16 __hsub(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16((float)a - (float)b); }
inline __nv_bfloat16 __hmul(__nv_bfloat16 a, __nv_bfloat16 b) { return __nv_bfloat16((float)a * (float)b); }
inline __nv_bfloat16 __hfma(__nv_bfloat16 a, __nv_bfloat16 b, __nv_bfloat16 c) {
  return __nv_bfloat16(fmaf((float)a, (float)b, (float)c));
}

/* ---- Runtime API: device memory is host memory, launches run before they return ---------- */

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = ::tttc_cpu::tl_last_error;
  ::tttc_cpu::tl_last_error = ::tttc_cpu::tl_sticky_error;
  return e;
}
inline cudaError_t cudaPeekAtLastError() { return ::tttc_cpu::tl_last_error; }
inline const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDeviceFunction: return "cudaErrorInvalidDeviceFunction";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorLaunchFailure: return "unspecified launch failure (see the CPU runtime's message)";
  }
  return "unknown error";
}

inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : ::tttc_cpu::record(cudaErrorInvalidDevice); }
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device != 0) return ::tttc_cpu::record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = (int)::tttc_cpu::kMaxThreads; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)::tttc_cpu::kDefaultSharedBytes; return cudaSuccess;
    case cudaDevAttrWarpSize: *value = (int)::tttc_cpu::kWarp; return cudaSuccess;
    case cudaDevAttrMultiProcessorCount: *value = 1; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor: *value = TTTC_CUDA_CPU_ARCH / 10; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = TTTC_CUDA_CPU_ARCH % 10; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)::tttc_cpu::kOptInSharedBytes; return cudaSuccess;
  }
  return ::tttc_cpu::record(cudaErrorInvalidValue);
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
  if (device != 0) return ::tttc_cpu::record(cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "tttc cuda-cpu (sm_%d emulated on the CPU)", TTTC_CUDA_CPU_ARCH);
  p->major = TTTC_CUDA_CPU_ARCH / 10;
  p->minor = TTTC_CUDA_CPU_ARCH % 10;
  p->sharedMemPerBlock = ::tttc_cpu::kDefaultSharedBytes;
  p->sharedMemPerBlockOptin = ::tttc_cpu::kOptInSharedBytes;
  p->totalGlobalMem = (size_t)1 << 34;
  p->multiProcessorCount = 1;
  p->warpSize = (int)::tttc_cpu::kWarp;
  p->maxThreadsPerBlock = (int)::tttc_cpu::kMaxThreads;
  return cudaSuccess;
}
template <class F>
inline cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize)
    return ::tttc_cpu::set_dynamic_shared(reinterpret_cast<const void*>(func), value);
  return cudaSuccess;
}

/* Each allocation is exactly the bytes asked for (256-byte aligned), so AddressSanitizer sees overflows. */
inline cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (posix_memalign(p, 256, bytes > 0 ? bytes : 1) != 0) return ::tttc_cpu::record(cudaErrorMemoryAllocation);
  return cudaSuccess;
}
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaMalloc(p, bytes); }
inline cudaError_t cudaFree(void* p) {
  free(p);
  return cudaSuccess;
}
inline cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t = nullptr) {
  return cudaMemcpy(dst, src, bytes, kind);
}
inline cudaError_t cudaMemset(void* p, int value, size_t bytes) {
  memset(p, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t = nullptr) { return cudaMemset(p, value, bytes); }
inline cudaError_t cudaDeviceSynchronize() { return ::tttc_cpu::tl_sticky_error; }
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return ::tttc_cpu::tl_sticky_error; }
inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }

/* Runs the kernel over the grid before returning (every stream is synchronous here). */
template <class... Expected, class... Actual>
inline cudaError_t cudaLaunchKernelEx(const cudaLaunchConfig_t* config, void (*kernel)(Expected...), Actual&&... args) {
  /* The arguments convert to the kernel's parameter types, as CUDA's own template does. */
  return [&](std::decay_t<Expected>... coerced) {
    auto call = [&]() { kernel(coerced...); };
    auto body = [](void* c) { (*static_cast<decltype(call)*>(c))(); };
    return ::tttc_cpu::launch(reinterpret_cast<const void*>(kernel), *config, body, &call);
  }(std::forward<Actual>(args)...);
}

#include "tttc_cuda_cpu_mma.h"

#endif /* TTTC_CUDA_CPU_H */
