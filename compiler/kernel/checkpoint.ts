/**
 * The forward kernel that also saves its checkpoints: before each chunk, what the chunk starts
 * from (every carried value, from its home) goes to the checkpoint port, [C, B·H, F] with the F
 * carried floats packed per sequence-head as core/packing.ts packs the state buffers. The
 * backward kernel (backward.ts) reads chunk `c`'s values from the same places.
 */
import { layoutOf, regionOf, stateFloats } from '../../core/packing.ts';
import type { KernelSignature, Port } from '../../core/signature.ts';
import { checkpointingSignature } from '../backward/signature.ts';
import type { Carried, ScheduledKernel } from '../schedule/kernel.ts';
import { add, mul } from './affine.ts';
import { type Expr, type Kernel, type Stmt, assign, comment, int, name, store, uniform, variable } from './ir.ts';
import type { KernelFeatures } from './features.ts';
import { Lowering } from './lower.ts';

/** The kernel's count of the chunks it has walked (forward) or has left (backward). */
export const CHUNK_INDEX = 'chunk_index';

/** Where element `flat` of a state's carried value of chunk `chunk` of sequence-head `bh` is in the checkpoint port. */
export function checkpointIndex(
  sig: KernelSignature,
  kind: Carried,
  state: string,
  chunk: Expr,
  bh: Expr,
  flat: Expr,
): Expr {
  const layout = layoutOf(sig);
  const list = kind === 'state' ? layout.states : kind === 'accum' ? layout.accums : layout.opts;
  const prefix = regionOf(list, { role: kind, name: state }).prefix;
  return add(mul(add(mul(chunk, uniform('BH')), bh), stateFloats(layout)), add(int(prefix), flat));
}

class CheckpointLowering extends Lowering {
  private readonly port: Port;

  constructor(
    k: ScheduledKernel,
    private readonly forward: KernelSignature,
    sourceLines: readonly string[],
    features: KernelFeatures,
  ) {
    const sig = checkpointingSignature(forward);
    super(k, sig, sourceLines, features);
    this.port = sig.outputs.find((p) => p.role === 'checkpoint')!;
  }

  protected override walk(chunk: Stmt[], prologue: Stmt[]): Stmt[] {
    const next = assign(CHUNK_INDEX, add(name(CHUNK_INDEX), int(1)));
    return [variable(CHUNK_INDEX, 'index', int(0)), ...super.walk([...chunk, next], prologue)];
  }

  /** Every carried value, element by element from the invocation that updates it (no barrier needed). */
  protected override chunkStart(): Stmt[] {
    const e = name('e');
    const out: Stmt[] = [comment('Save what this chunk starts from, for the backward.')];
    for (const [state, homes] of this.k.states) {
      const n = this.stateSize.get(state)!;
      const update = this.k.stages.find((s) => s.kind === 'update' && s.state === state)!;
      out.push(
        this.stageElements(
          update,
          n,
          this.carried.map((kind) =>
            store(
              { kind: 'port', port: this.port },
              checkpointIndex(this.forward, kind, state, name(CHUNK_INDEX), name('bh'), e),
              this.places.readHome(homes[kind]!, state, kind, this.places.stateIndex(state, e)),
            ),
          ),
        ),
      );
    }
    return out;
  }
}

/** The forward kernel of `k` that also writes the checkpoint port of checkpointingSignature(signature). */
export function lowerCheckpointingKernel(
  k: ScheduledKernel,
  signature: KernelSignature,
  sourceLines: readonly string[],
  features: KernelFeatures = {},
): Kernel {
  return new CheckpointLowering(k, signature, sourceLines, features).kernel();
}
