/** The ports of a kernel signature, looked up by role, direction and name, or by the program input they feed. */
import { chunkInputKey } from '../../core/mangle.ts';
import type { KernelSignature, Port } from '../../core/signature.ts';
import type { Buffer } from './ir.ts';

/** A port as comments name it: `the view k`, `the rate lr`, `the cotangent of the output`. */
export const portText = (p: Port): string => (p.grad ? `the cotangent of the ${p.name}` : `the ${p.role} ${p.name}`);

/** The ports of a signature by role, direction and name. */
export class Ports {
  private readonly byKey: Map<string, Port>;
  constructor(private readonly sig: KernelSignature) {
    this.byKey = new Map(sig.inputs.map((p) => [chunkInputKey(p), p]));
  }
  /** Inputs then outputs: the kernel's global buffers. */
  all(): Port[] {
    return [...this.sig.inputs, ...this.sig.outputs];
  }
  /** The input port a mini-batch program input reads; none for the walk's own inputs. */
  ofInput(key: string): Port | undefined {
    return this.byKey.get(key);
  }
  get(role: Port['role'], io: Port['io'], name: string): Buffer {
    const list = io === 'in' ? this.sig.inputs : this.sig.outputs;
    const port = list.find((x) => x.role === role && x.name === name);
    if (!port) throw new Error(`the kernel signature has no ${io} ${role} ${name}`);
    return { kind: 'port', port };
  }
}
