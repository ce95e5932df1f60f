/**
 * The host side of the .cu: `extern "C"` functions that check a call's arguments, opt in to the
 * shared memory the kernel needs and launch it, reporting failures as status codes and messages
 * instead of launching out of bounds.
 */
import type { VariantName } from '../../compiler/pipeline.ts';
import type { ScheduledKernel } from '../../compiler/schedule/kernel.ts';
import type { Lines } from '../clike/lines.ts';
import { DEFAULT_SHARED_BYTES, type Arch } from './arch.ts';
import type { CudaApi } from './api.ts';
import { SCALAR_PARAMETERS } from './kernel.ts';
import { identifier } from '../../core/mangle.ts';
import type { Port } from '../../core/signature.ts';
import { CHUNKS, elementCount, fieldElement } from './tensors.ts';

/** Comma-separated items in lines of at most `width` characters (one item may exceed it). */
function wrap(items: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const [i, item] of items.entries()) {
    const text = i < items.length - 1 ? `${item},` : item;
    if (line && line.length + 1 + text.length > width) {
      lines.push(line);
      line = text;
    } else line = line ? `${line} ${text}` : text;
  }
  return [...lines, line];
}

/** The launcher's field of a tensor as the kernel's parameter: bf16 bits (the header's uint16_t) as `__nv_bfloat16`. */
function kernelArgument(t: Port): string {
  const field = `a->${identifier(t)}`;
  return t.bf16 ? `reinterpret_cast<${t.io === 'out' ? '' : 'const '}__nv_bfloat16*>(${field})` : field;
}

/** A `__global__` function of the .cu and its schedule. */
export interface HostKernel {
  variant: VariantName | 'checkpoints' | 'backward';
  name: string;
  kernel: ScheduledKernel;
  /** Its tensors, when not every tensor of the call (kernels of a backward call take their own). */
  tensors?: readonly Port[];
}

/** The constant holding one of a kernel's launch sizes: `kSharedBytes`, `kDecodeThreads`, ... */
const launchConstant = (v: HostKernel, what: 'SharedBytes' | 'Threads') =>
  v.variant === 'prefill' ? `k${what}` : `k${v.variant[0].toUpperCase()}${v.variant.slice(1)}${what}`;
/** The constant holding a kernel's dynamic shared memory per block. */
const sharedConstant = (v: HostKernel) => launchConstant(v, 'SharedBytes');
/** The constant holding a kernel's threads per block (the scheduler's, compiler/schedule/workgroup-size.ts). */
const threadsConstant = (v: HostKernel) => launchConstant(v, 'Threads');

/** One more `extern "C"` launcher of the .cu: runs some of the kernels, in order, on the tensors they take. */
export interface HostEntry {
  name: string;
  variants: readonly HostKernel[];
  tensors: readonly Port[];
}

/** How a call runs its kernels: the one for its T (prefill, or decode for one token), or all in order (a backward call). */
export interface HostLaunch {
  sequence: boolean;
  /**
   * The launcher's function counting the chunks a call walks (`size_t NAME(int T, int start)`)
   * and its body, statements counting them into `chunks` from `T` and `start`, when a tensor has
   * a chunk axis: the caller sizes the checkpoints with it, the launcher checks them with it.
   */
  countChunks?: { name: string; body: readonly string[] };
  /** Launchers of parts of the call, beside the one of the whole call. */
  parts?: readonly HostEntry[];
}

export function renderHost(
  L: Lines,
  api: CudaApi,
  arch: Arch,
  /** Prefill first, then the one-row decode kernel when there is one. */
  variants: readonly HostKernel[],
  tensors: readonly Port[],
  how: HostLaunch = { sequence: false },
): void {
  const kernel = variants[0].kernel;
  const scratchFloats = Math.max(...variants.map((v) => v.kernel.scratchFloats));
  L.line(
    `// Host side: argument checks and the launch (documented in ${api.header}).`,
    '',
    'namespace {',
    '',
    `constexpr int kMiniBatch = ${kernel.chunk.K};`,
    ...variants.map((v) => `constexpr unsigned ${threadsConstant(v)} = ${v.kernel.invocations};`),
    ...variants.map((v) => `constexpr size_t ${sharedConstant(v)} = ${v.kernel.workgroupFloats * 4};`),
    `constexpr size_t kScratchFloats = ${scratchFloats};  // per (sequence, head)`,
    '',
    'thread_local char last_error[512] = "";',
    '',
    `// Records why a call failed, for ${api.lastError}, and returns its status.`,
    '__attribute__((format(printf, 2, 3))) int fail(int status, const char* format, ...) {',
    '  va_list args;',
    '  va_start(args, format);',
    '  vsnprintf(last_error, sizeof last_error, format, args);',
    '  va_end(args);',
    '  return status;',
    '}',
    '',
    'int cuda_failed(cudaError_t error, const char* what) {',
    '  return fail(TTTC_ERROR_CUDA, "%s failed: %s (%s)", what, cudaGetErrorName(error), cudaGetErrorString(error));',
    '}',
    '',
    '// A tensor of the call: where it starts, its size, and whether the kernel writes it.',
    'struct Extent {',
    '  const char* name;',
    '  const void* data;',
    '  size_t bytes;',
    '  bool written;',
    '};',
    '',
    'bool overlap(const Extent& a, const Extent& b) {',
    '  const uintptr_t a0 = reinterpret_cast<uintptr_t>(a.data), b0 = reinterpret_cast<uintptr_t>(b.data);',
    '  return a0 < b0 + b.bytes && b0 < a0 + a.bytes;',
    '}',
    '',
    '}  // namespace',
    '',
    `extern "C" size_t ${api.scratchBytes}(int B, int H) {`,
    '  if (B < 1 || H < 1) return 0;',
    '  return (size_t)B * H * kScratchFloats * sizeof(float);',
    '}',
    '',
    `extern "C" const char* ${api.lastError}(void) {`,
    '  return last_error;',
    '}',
    '',
  );
  if (how.countChunks) {
    L.open(`extern "C" size_t ${how.countChunks.name}(int T, int start)`);
    L.line('if (T < 1 || start < 0 || start >= kMiniBatch) return 0;', ...how.countChunks.body, 'return chunks;');
    L.close();
    L.line('');
  }
  renderLauncher(L, api, arch, api.forward, variants, tensors, how.sequence, how.countChunks?.name);
  for (const part of how.parts ?? []) {
    L.line('');
    renderLauncher(L, api, arch, part.name, part.variants, part.tensors, true, how.countChunks?.name);
  }
}

/** One launcher: checks the call's arguments and its tensors, then launches its kernels. */
function renderLauncher(
  L: Lines,
  api: CudaApi,
  arch: Arch,
  name: string,
  variants: readonly HostKernel[],
  tensors: readonly Port[],
  sequence: boolean,
  countChunks: string | undefined,
): void {
  const sharedBytes = Math.max(...variants.map((v) => v.kernel.workgroupFloats * 4));
  const usesScratch = variants.some((v) => v.kernel.scratchFloats > 0);
  L.open(`extern "C" int ${name}(const ${api.args}* a, cudaStream_t stream)`);
  L.line(
    "last_error[0] = '\\0';",
    'if (a == nullptr) return fail(TTTC_ERROR_NULL_POINTER, "args is NULL");',
    'if (a->B < 1 || a->H < 1 || a->T < 1) return fail(TTTC_ERROR_BAD_SIZE, "B = %d, H = %d, T = %d: each must be at least 1", a->B, a->H, a->T);',
    'if ((long long)a->B * a->H > INT_MAX) return fail(TTTC_ERROR_BAD_SIZE, "B * H = %lld blocks exceed the grid\'s 2^31 - 1", (long long)a->B * a->H);',
    'if (a->start < 0 || a->start >= kMiniBatch) return fail(TTTC_ERROR_BAD_START, "start = %d is outside [0, %d)", a->start, kMiniBatch);',
  );
  // Under read order 'after' a token reads the end of its mini-batch: no call continues one.
  if (variants[0].kernel.chunk.layer.update.rules.read === 'after')
    L.line(
      'if (a->start != 0) return fail(TTTC_ERROR_BAD_START, "start = %d: with read order \'after\' a token reads the end of its mini-batch, so calls start at a mini-batch boundary (start 0) and cannot decode token by token", a->start);',
    );
  if (usesScratch) {
    L.line(
      `const size_t scratch_bytes = ${api.scratchBytes}(a->B, a->H);`,
      'if (a->scratch_bytes < scratch_bytes) {',
      `  return fail(TTTC_ERROR_SCRATCH_TOO_SMALL, "scratch_bytes = %zu, but B = %d, H = %d need %zu (${api.scratchBytes})", a->scratch_bytes, a->B, a->H, scratch_bytes);`,
      '}',
    );
  }
  if (countChunks && tensors.some((t) => t.lead.includes('C')))
    L.line(`const size_t ${CHUNKS} = ${countChunks}(a->T, a->start);`);
  L.open('const Extent tensors[] =');
  for (const t of tensors)
    L.line(
      `{"${identifier(t)}", a->${identifier(t)}, ${elementCount(t, 'a->')} * sizeof(${fieldElement(t)}), ${t.io === 'out'}},`,
    );
  if (usesScratch) L.line('{"scratch", a->scratch, scratch_bytes, true},');
  L.close(';');
  L.open('for (const Extent& t : tensors)');
  L.line(
    'if (t.data == nullptr) return fail(TTTC_ERROR_NULL_POINTER, "%s is NULL", t.name);',
    'if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) != 0) return fail(TTTC_ERROR_MISALIGNED, "%s (%p) is not 4-byte aligned", t.name, t.data);',
  );
  L.close();
  L.open('for (const Extent& t : tensors)');
  L.open('for (const Extent& u : tensors)');
  L.open('if (&t < &u && (t.written || u.written) && overlap(t, u))');
  L.line(
    'return fail(TTTC_ERROR_OVERLAP, "%s and %s overlap; a tensor the kernel writes must not share memory with another", t.name, u.name);',
  );
  L.close().close().close();
  if (sharedBytes > DEFAULT_SHARED_BYTES) {
    L.line(
      '',
      `// Above ${DEFAULT_SHARED_BYTES / 1024} KB of dynamic shared memory a kernel must opt in, on each device.`,
      'int device = 0, available = 0;',
      'if (const cudaError_t e = cudaGetDevice(&device); e != cudaSuccess) return cuda_failed(e, "cudaGetDevice");',
      'if (const cudaError_t e = cudaDeviceGetAttribute(&available, cudaDevAttrMaxSharedMemoryPerBlockOptin, device); e != cudaSuccess) {',
      '  return cuda_failed(e, "cudaDeviceGetAttribute(cudaDevAttrMaxSharedMemoryPerBlockOptin)");',
      '}',
      `if ((size_t)available < ${sharedBytes}) {`,
      `  return fail(TTTC_ERROR_DEVICE, "device %d offers %d bytes of shared memory per block; this kernel, generated for ${arch.name}, needs %zu", device, available, (size_t)${sharedBytes});`,
      '}',
    );
    for (const v of variants.filter((x) => x.kernel.workgroupFloats * 4 > DEFAULT_SHARED_BYTES))
      L.line(
        `if (const cudaError_t e = cudaFuncSetAttribute(${v.name}, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)${sharedConstant(v)}); e != cudaSuccess) {`,
        '  return cuda_failed(e, "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize)");',
        '}',
      );
  }
  const launch = (v: HostKernel, suffix = '') => {
    const args = [
      ...SCALAR_PARAMETERS.map((p) => `(unsigned)a->${p}`),
      ...(v.tensors ?? tensors).map((t) => kernelArgument(t)),
      ...(v.kernel.scratchFloats > 0 ? ['a->scratch'] : []),
    ];
    // cudaLaunchKernelEx rather than `<<<>>>`: plain C++, so the CPU runtime (runtime/cuda-cpu) builds it too.
    L.line(
      `cudaLaunchConfig_t launch${suffix} = {};`,
      `launch${suffix}.gridDim = dim3((unsigned)(a->B * a->H));`,
      `launch${suffix}.blockDim = dim3(${threadsConstant(v)});`,
      `launch${suffix}.dynamicSmemBytes = ${sharedConstant(v)};`,
      `launch${suffix}.stream = stream;`,
      `const cudaError_t launched${suffix} = cudaLaunchKernelEx(&launch${suffix}, ${v.name},`,
    );
    L.line(...wrap(args, 100).map((line, i, all) => `    ${line}${i === all.length - 1 ? ');' : ''}`));
    L.line(
      `if (launched${suffix} != cudaSuccess) return cuda_failed(launched${suffix}, "launching ${suffix ? v.name : 'the kernel'}");`,
    );
  };
  L.line('');
  if (sequence) {
    if (variants.length > 1) L.line('// The kernels run in order on the stream: each sees what the one before wrote.');
    for (const v of variants) launch(v, `_${v.variant}`);
  } else if (variants.length > 1) {
    L.line('// A call of one token runs the one-row kernel: it does not pay for a whole mini-batch.');
    L.open('if (a->T == 1)');
    launch(variants[1]);
    L.close();
    L.open('else');
    launch(variants[0]);
    L.close();
  } else launch(variants[0]);
  L.line('return TTTC_OK;');
  L.close();
}
