/**
 * CUDA's spelling of the kernel IR's tensor-core statements, through the device functions of
 * tttc_mma.cuh (./mma.ts): bf16 staging through a bf16 view of shared memory, ldmatrix, mma.sync.
 */
import type { FragmentSpelling } from '../clike/dialect.ts';
import { WORKGROUP_ARRAY } from '../clike/print.ts';

/** Shared memory seen as bf16 elements, declared by kernels that stage tensor-core operands or read bf16 rows ahead. */
export const WORKGROUP_BF16 = `${WORKGROUP_ARRAY}_bf16`;

/** The b32 registers (two bf16 each) of an operand fragment, or the f32 elements of an accumulator. */
const DECLARATION = {
  a: (n: string) => `uint32_t ${n}[4];`,
  b: (n: string) => `uint32_t ${n}[2];`,
  c: (n: string) => `float ${n}[4] = {0.0f, 0.0f, 0.0f, 0.0f};`,
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
        return `tttc_ldmatrix_x${count}${s.transpose ? '_trans' : ''}(${s.fragment}, &${WORKGROUP_BF16}[${expr(s.index)}]);`;
      }
      case 'mma':
        return `tttc_mma_m16n8k16_bf16(${s.c}, ${s.a}, ${s.b}, ${s.c});`;
    }
  },
  element: (fragment, element) => `${fragment}[${element}]`,
};
