/**
 * CUDA's spelling of the kernel IR's tensor-core statements, through the device functions of
 * tttc_mma.cuh (./mma.ts): bf16 staging through a bf16 view of shared memory (tf32x3 stages f32),
 * ldmatrix, mma.sync.
 */
import type { FragmentSpelling } from '../clike/dialect.ts';
import { WORKGROUP_ARRAY } from '../clike/print.ts';
import type { MmaOperands } from '../../compiler/schedule/kernel.ts';

/** Shared memory seen as bf16 elements, declared by kernels that stage tensor-core operands or read bf16 rows ahead. */
export const WORKGROUP_BF16 = `${WORKGROUP_ARRAY}_bf16`;

/** The b32 registers (two bf16 or one tf32 each) of an operand fragment, or the f32 elements of an accumulator. */
const DECLARATION = {
  a: (n: string) => `uint32_t ${n}[4];`,
  b: (n: string) => `uint32_t ${n}[2];`,
  c: (n: string) => `float ${n}[4] = {0.0f, 0.0f, 0.0f, 0.0f};`,
};

/** tttc_mma.cuh's function for one mma step on each kind of operands. */
const MMA_FUNCTION: Record<MmaOperands, string> = {
  bf16: 'tttc_mma_m16n8k16_bf16',
  tf32x3: 'tttc_mma_m16n8k8_tf32x3',
};

export const cudaFragments: FragmentSpelling = {
  statement(s, expr) {
    switch (s.kind) {
      case 'fragment':
        return DECLARATION[s.role](s.name);
      case 'store-bf16':
        return `${WORKGROUP_BF16}[${expr(s.index)}] = __float2bfloat16(${expr(s.value)});`;
      case 'load-fragment': {
        const count = s.role === 'a' ? 4 : 2;
        const rows = s.elementBytes === 2 ? WORKGROUP_BF16 : WORKGROUP_ARRAY;
        return `tttc_ldmatrix_x${count}${s.transpose ? '_trans' : ''}(${s.fragment}, &${rows}[${expr(s.index)}]);`;
      }
      case 'pack-fragment': {
        const [lo, hi] = s.values.map(expr);
        const bits = hi === undefined ? `__float_as_uint(${lo})` : `tttc_pack_bf16x2(${lo}, ${hi})`;
        return `${s.fragment}[${s.register}] = ${bits};`;
      }
      case 'mma':
        return `${MMA_FUNCTION[s.operands]}(${s.c}, ${s.a}, ${s.b}, ${s.c});`;
    }
  },
  element: (fragment, element) => `${fragment}[${element}]`,
};
