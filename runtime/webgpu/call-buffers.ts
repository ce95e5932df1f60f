/**
 * The buffers of one kernel call, shared by the forward and the backward: storage buffers within
 * the adapter's binding limit, uploads of packed tensors, and the uniforms every tttc kernel reads.
 */
import { UNIFORM_FIELDS } from '../../core/packing.ts';
import { deviceLimits } from './device.ts';
import { workgroupGrid } from './pipelines.ts';

/** A call needs more than the adapter offers (a buffer's size, workgroup storage, invocations). */
export class LimitError extends Error {}

export interface CallBuffers {
  /**
   * A storage buffer of `floats` f32 values; a LimitError naming the adapter's binding limit when
   * it passes it, and, for a buffer of one slice per `per.unit` (`per.count` of them), the slice.
   */
  storage(label: string, floats: number, usage?: number, per?: { count: number; unit: string }): GPUBuffer;
  /** A storage buffer holding `data`. */
  upload(label: string, data: Float32Array<ArrayBuffer>): GPUBuffer;
  /** The uniform buffer of a call of B·H sequence-heads of T tokens from mini-batch position `start`. */
  uniforms(call: { B: number; H: number; T: number; start: number }): GPUBuffer;
}

export function callBuffers(device: GPUDevice): CallBuffers {
  const limit = deviceLimits(device).maxStorageBufferBindingSize;
  const storage = (label: string, floats: number, usage = 0, per?: { count: number; unit: string }) => {
    const bytes = Math.max(16, floats * 4);
    if (bytes > limit) {
      const slices = per ? ` (${(floats * 4) / per.count} per ${per.unit}, ${per.count} of them)` : '';
      const fewer = per
        ? `: call with at most ${Math.floor((limit * per.count) / (floats * 4))} ${per.unit}s at once`
        : '';
      throw new LimitError(
        `buffer ${label} needs ${bytes} bytes${slices}; the adapter's maxStorageBufferBindingSize is ${limit} bytes${fewer}`,
      );
    }
    return device.createBuffer({ label, size: bytes, usage: GPUBufferUsage.STORAGE | usage });
  };
  return {
    storage,
    upload(label, data) {
      const buf = storage(label, data.length, GPUBufferUsage.COPY_DST);
      device.queue.writeBuffer(buf, 0, data);
      return buf;
    },
    uniforms({ B, H, T, start }) {
      const BH = B * H;
      const fields: Record<string, number> = {
        B,
        H,
        T,
        start,
        BH,
        BHT: BH * T,
        groups_x: workgroupGrid(BH)[0],
        pad: 0,
      };
      const values = new Uint32Array(UNIFORM_FIELDS.map((f) => fields[f]));
      const buf = device.createBuffer({
        label: 'uniforms',
        size: values.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(buf, 0, values);
      return buf;
    },
  };
}
