/**
 * The backward kernel's lowering (its schedule: compiler/schedule/backward.ts): one workgroup per
 * (sequence, head) starts the carried cotangents from the cotangents of the call's final carry,
 * walks the chunks in reverse (reverse-walk.ts), and per chunk stages what the chunk started from
 * out of the checkpoints (checkpoint.ts), runs the derived backward program's stages, writes the
 * gradient rows of per-token inputs in place, adds those of per-chunk inputs to its
 * sequence-head's sums, and replaces the carried cotangents; at the end they are the gradients of
 * the call's initial carry. Everything else is the forward's lowering (lower.ts).
 */
import { programKey } from '../../core/mangle.ts';
import { size } from '../../core/shape.ts';
import type { KernelSignature, Port } from '../../core/signature.ts';
import type { ChunkBackward } from '../backward/derive.ts';
import { backwardSignature } from '../backward/signature.ts';
import { WALK } from '../dualform/derive.ts';
import { carriedInputs } from '../schedule/backward.ts';
import type { Carried, ScheduledKernel, Stage } from '../schedule/kernel.ts';
import { add, mul, sub } from './affine.ts';
import { CHUNK_INDEX, checkpointIndex } from './checkpoint.ts';
import {
  type Buffer,
  type Expr,
  type Kernel,
  type Stmt,
  comment,
  float,
  floatOp,
  int,
  load,
  name,
  store,
  uniform,
} from './ir.ts';
import type { KernelFeatures } from './features.ts';
import { Lowering } from './lower.ts';
import { lowerReverseWalk, reverseOrder } from './reverse-walk.ts';
import { Index } from './tensor-index.ts';
import { type ChunkOrder, ROWS_COMMENT, WALK_NAMES } from './walk.ts';

const bh = name('bh');
const e = name('e');

class BackwardLowering extends Lowering {
  private readonly signature: KernelSignature;
  private readonly checkpoints: Buffer;
  private readonly carriedKeys: Map<string, { kind: Carried; state: string }>;

  constructor(
    k: ScheduledKernel,
    backward: ChunkBackward,
    private readonly forward: KernelSignature,
    sourceLines: readonly string[],
    features: KernelFeatures,
  ) {
    const signature = backwardSignature(forward);
    super(k, signature, sourceLines, features);
    this.signature = signature;
    this.checkpoints = { kind: 'port', port: signature.inputs.find((p) => p.role === 'checkpoint')! };
    this.carriedKeys = carriedInputs(backward);
  }

  /** The gradient port of the input port with this program key. */
  private gradient(key: string): { kind: 'port'; port: Port } {
    const port = this.signature.outputs.find((p) => p.grad && programKey(p) === key);
    if (!port) throw new Error(`the backward signature has no gradient of ${key}`);
    return { kind: 'port', port };
  }

  /** The sums per sequence-head (scale, params) start at zero; then the forward's body. */
  protected override body(): Stmt[] {
    const sums = this.signature.outputs.filter((p) => p.grad && (p.role === 'scale' || p.role === 'param'));
    const zero = sums.map((p) => {
      const n = size(p.shape);
      return this.elements(n, [store({ kind: 'port', port: p }, add(mul(bh, n), e), float(0))]);
    });
    if (zero.length === 0) return super.body();
    return [comment('Gradients summed over the chunks start at zero.'), ...zero, ...super.body()];
  }

  protected override walk(chunk: Stmt[], prologue: Stmt[]): Stmt[] {
    return [ROWS_COMMENT, ...lowerReverseWalk(this.walkInputs(), chunk, prologue)];
  }

  /** The chunk read ahead is the one before: the walk runs in reverse. */
  protected override chunkOrder(): ChunkOrder {
    return reverseOrder();
  }

  /** A carried value at the chunk's start, read from its checkpoint. */
  private checkpoint(key: string, flat: Expr): Expr | undefined {
    const c = this.carriedKeys.get(key);
    if (!c) return undefined;
    return load(this.checkpoints, checkpointIndex(this.forward, c.kind, c.state, name(CHUNK_INDEX), bh, flat));
  }

  protected override input(key: string, index: Index): Expr {
    return this.checkpoint(key, index.flat()) ?? super.input(key, index);
  }

  protected override stage(s: Stage): Stmt[] {
    if (s.kind === 'gradient') return this.gradientStage(s);
    const op = s.kind === 'compute' ? this.k.program.nodes[s.node].op : undefined;
    if (s.kind !== 'compute' || op?.kind !== 'input' || !this.carriedKeys.has(op.name)) return super.stage(s);
    const shape = this.k.program.nodes[s.node].shape;
    const at = this.places.node(s.node, Index.flat(shape, e, this.names));
    if (at.kind !== 'load') throw new Error('a placement is a load');
    const n = size(shape);
    return [
      comment(`Stage ${op.name} as this chunk started with it.`),
      this.stageElements(s, n, [store(at.buffer, at.index, this.checkpoint(op.name, e)!)]),
    ];
  }

  private gradientStage(s: Stage & { kind: 'gradient' }): Stmt[] {
    const node = this.k.program.nodes[s.node];
    const to = this.gradient(s.port);
    const port = to.port;
    const value = (flat: Expr) => this.values.value(s.node, Index.flat(node.shape, flat, this.names));
    const added = (index: Expr, x: Expr) => store(to, index, floatOp('+', load(to, index), x));
    const head = this.describeGradient(s);
    if (s.input === WALK.commit) {
      // The chunk that ends a mini-batch read scale_{K-1} as its commit factor.
      const last = add(mul(bh, this.K), sub(this.K, int(1)));
      return [
        head,
        { kind: 'if', condition: name(WALK_NAMES.ends), body: [this.elements(1, [added(last, value(int(0)))])] },
      ];
    }
    if (port.lead.includes('T')) {
      // Rows of this chunk's tokens, each written once in the whole walk.
      const width = size(node.shape.slice(1));
      const flat = add(mul(add(mul(bh, uniform('T')), name(WALK_NAMES.token)), width), e);
      return [head, this.elements(mul(name(WALK_NAMES.count), width), this.shared([store(to, flat, value(e))]))];
    }
    if (port.role === 'scale') {
      // Row r read the scale of position `position + r`.
      const at = add(add(mul(bh, this.K), name(WALK_NAMES.position)), e);
      return [head, this.elements(name(WALK_NAMES.count), this.shared([added(at, value(e))]))];
    }
    const n = size(node.shape);
    return [head, this.elements(n, this.shared([added(add(mul(bh, n), e), value(e))]))];
  }

  private describeGradient(s: Stage & { kind: 'gradient' }): Stmt {
    return comment(`Gradient of ${s.input}${s.input === s.port ? '' : ` (part of ${s.port}'s)`}.`);
  }
}

/** The backward kernel of a backward schedule, for the compilation whose forward signature is `forward`. */
export function lowerBackwardKernel(
  k: ScheduledKernel,
  backward: ChunkBackward,
  forward: KernelSignature,
  sourceLines: readonly string[],
  features: KernelFeatures = {},
): Kernel {
  return new BackwardLowering(k, backward, forward, sourceLines, features).kernel();
}
