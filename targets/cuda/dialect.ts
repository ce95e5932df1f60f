/** CUDA C++'s spelling of the C-like kernel constructs: unsigned indices, f32 math, `__syncthreads`. */
import type { UnaryFn } from '../../compiler/ir/ir.ts';
import type { Dialect } from '../clike/dialect.ts';
import type { MmaOperands } from '../../compiler/schedule/kernel.ts';
import type { MatmulPrecision } from '../target.ts';
import { floatLiteral } from '../clike/literals.ts';
import { cudaFragments, WORKGROUP_BF16 } from './fragments.ts';

/** `0.5` → `0.5f`, `(-2.0)` → `(-2.0f)`: an unsuffixed literal would make the expression double. */
export function cudaFloat(value: number): string {
  const text = floatLiteral(value);
  return text.endsWith(')') ? `${text.slice(0, -1)}f)` : `${text}f`;
}

const MATH: Partial<Record<UnaryFn, string>> = { exp: 'expf', log: 'logf', tanh: 'tanhf', sqrt: 'sqrtf', erf: 'erff' };

export const cuda: Dialect = {
  indexType: 'unsigned',
  floatType: 'float',
  float: cudaFloat,
  unary(fn: UnaryFn, x: string): string {
    switch (fn) {
      case 'neg':
        return `(-${x})`;
      case 'recip':
        return `(1.0f / ${x})`;
      case 'step':
        return `(${x} > 0.0f ? 1.0f : 0.0f)`;
      default:
        return `${MATH[fn]}(${x})`;
    }
  },
  select: (c, t, f) => `(${c} ? ${t} : ${f})`,
  constant: (name, type, value) => `const ${type} ${name} = ${value};`,
  variable: (name, type, value) => `${type} ${name} = ${value};`,
  loop: (name, from, to, step = '1') => `for (unsigned ${name} = ${from}; ${name} < ${to}; ${name} += ${step})`,
  min: (a, b) => `min(${a}, ${b})`,
  // __syncthreads orders both shared and global memory among the block's threads.
  barrier: () => '__syncthreads();',
  // __syncwarp orders the memory accesses of a warp's lanes, as __syncthreads does a block's.
  warpBarrier: '__syncwarp();',
  rolledLoop: '#pragma unroll 1',
  shuffleXor: (x, mask, width) => `__shfl_xor_sync(0xffffffffu, ${x}, ${mask}, ${width})`,
  // cp.async through tttc_mma.cuh (./mma.ts), which the renderer includes when a kernel reads ahead.
  asyncCopy: {
    copy: (shared, global) => `tttc_cp_async_16(&${shared}, &${global});`,
    commit: 'tttc_cp_async_commit();',
    wait: (pending) => `tttc_cp_async_wait<${pending}>();`,
    aligned: (array, bytes) => `reinterpret_cast<uintptr_t>(${array}) % ${bytes} == 0`,
    readBf16: (index) => `__bfloat162float(${WORKGROUP_BF16}[${index}])`,
  },
};

/** The device helper that rounds a matmul operand to bf16 (declared in the generated .cu). */
export const ROUND_BF16 = 'tttc_round_bf16';

/**
 * As `cuda`, with every matmul operand rounded to bf16; products still accumulate in f32. Products
 * the scheduler put on tensor cores stage their operands as bf16 (./fragments.ts).
 */
export const cudaBf16: Dialect = { ...cuda, matmulOperand: (x) => `${ROUND_BF16}(${x})`, fragments: cudaFragments };

/** As `cuda`, with f32 operands; products the scheduler put on tensor cores stage them as f32 and split them (tf32x3). */
export const cudaTf32x3: Dialect = { ...cuda, fragments: cudaFragments };

/** The dialect of a matmul precision. */
export const cudaDialect = (dtype: MatmulPrecision): Dialect =>
  dtype === 'bf16' ? cudaBf16 : dtype === 'tf32x3' ? cudaTf32x3 : cuda;

/** The tensor-core operands a matmul precision asks for; undefined: every product on FFMA. */
export const mmaOperands = (dtype: MatmulPrecision): MmaOperands | undefined => (dtype === 'f32' ? undefined : dtype);
