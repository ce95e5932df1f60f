/**
 * The body of an inner-loop kernel, shared by every C-like target: one workgroup per
 * (sequence, head) initialises the state, walks the chunks (views staged, stages separated by
 * barriers, output rows written, state updated), and writes the state back.
 */
import { WALK } from '../../compiler/dualform/derive.ts';
import { size } from '../../compiler/ir/ir.ts';
import type { Carried, Home, Placement, ScheduledKernel, Stage } from '../../compiler/schedule/kernel.ts';
import { dimConstant, programKey } from '../../core/mangle.ts';
import { showShape } from '../../core/shape.ts';
import type { KernelSignature, Port } from '../../core/signature.ts';
import { commentText } from '../text.ts';
import type { Dialect } from './dialect.ts';
import { Index, add, div, mod, mul } from './index.ts';
import { Lines } from './lines.ts';
import { type Memory, ValueEmitter } from './values.ts';

/** How a target reads and writes the kernel's global tensors (flat element offsets). */
export interface Globals {
  /** Uniform values: `T`, `start`, `H`. */
  uniform(name: 'T' | 'start' | 'H'): string;
  /** Element `flat` of a port of the kernel signature, read or written. */
  port(port: Port, flat: string): string;
  scratch(flat: string): string;
  workgroup(flat: string): string;
}

/** The ports of a signature by role, direction and name. */
class Ports {
  private readonly byKey: Map<string, Port>;
  constructor(private readonly sig: KernelSignature) {
    this.byKey = new Map(sig.inputs.map((p) => [programKey(p), p]));
  }
  /** The input port a mini-batch program input reads; none for the walk's own inputs. */
  ofInput(key: string): Port | undefined {
    return this.byKey.get(key);
  }
  get(role: Port['role'], io: Port['io'], name: string): Port {
    const list = io === 'in' ? this.sig.inputs : this.sig.outputs;
    const p = list.find((x) => x.role === role && x.name === name);
    if (!p) throw new Error(`the kernel signature has no ${io} ${role} ${name}`);
    return p;
  }
}

/** True unless the chunk starts a mini-batch after another ended it (then every accumulator is zero). */
const ACCUM_LIVE = 'accum_live';

export class KernelBody {
  private readonly values: ValueEmitter;
  private readonly stateSize: Map<string, number>;
  private readonly ports: Ports;

  constructor(
    private readonly k: ScheduledKernel,
    signature: KernelSignature,
    private readonly d: Dialect,
    private readonly g: Globals,
    /** Spec source text, to annotate each stage with the line it comes from. */
    private readonly sourceLines: readonly string[],
  ) {
    const memory: Memory = {
      isBuffered: (id) => k.buffers.has(id),
      buffer: (id, flat) => this.place(k.buffers.get(id)!, flat),
      input: (name, index) => this.input(name, index),
    };
    this.ports = new Ports(signature);
    this.values = new ValueEmitter(k.program, d, memory);
    this.stateSize = new Map(k.chunk.layer.states.map((s) => [s.name, size(s.shape)]));
  }

  private place(p: Placement, flat: string): string {
    return p.space === 'workgroup'
      ? this.g.workgroup(add(String(p.offset), flat))
      : this.g.scratch(add(add(mul('bh', this.k.scratchFloats), String(p.offset)), flat));
  }

  private home(h: Home, name: string, kind: Carried, flat: string): string {
    if (h.space !== 'global') return this.place(h, flat);
    const global = add(mul('bh', this.stateSize.get(name)!), flat);
    return this.g.port(this.ports.get(kind, 'out', name), global);
  }

  private input(key: string, index: Index): string {
    const port = this.ports.ofInput(key);
    if (!port) {
      if (key === WALK.mask) {
        const r = index.dims()[0];
        return this.d.select(`${r} < count`, this.d.float(1), this.d.float(0));
      }
      if (key === WALK.commit || key === WALK.keep) return key;
      throw new Error(`input ${key} is neither a port nor the walk's`);
    }
    switch (port.role) {
      case 'scale':
        // Row r's scale is that of position `position + r`; rows past the chunk's tokens are
        // masked, and clamping keeps their read in range.
        return this.g.port(port, this.d.min(`position + ${index.flat()}`, String(this.k.chunk.K - 1)));
      case 'param':
        return this.g.port(port, add(mul('h', size(index.shape)), index.flat()));
      case 'state':
      case 'accum':
      case 'opt':
        return this.home(this.k.states.get(port.name)![port.role]!, port.name, port.role, index.flat());
    }
    throw new Error(`the ${port.role} ${port.name} has no inline reading`);
  }

  /** The spec line a node comes from, quoted safely for a comment. */
  private origin(id: number): string {
    const o = this.k.program.nodes[id].origin;
    if (!o) return '';
    return `line ${o.start.line}: ${commentText((this.sourceLines[o.start.line - 1] ?? '').trim())}`;
  }

  /** A stage's comment: what it computes and the spec line it comes from. */
  private describe(id: number, what: string): string {
    const origin = this.origin(id);
    return `// ${what}${origin ? `, from ${origin}` : '.'}`;
  }

  private elements(L: Lines, n: number, body: (e: string) => void): void {
    L.open(this.d.loop('e', 'tid', String(n), String(this.k.invocations)));
    body('e');
    L.close();
  }

  emit(L: Lines): void {
    const d = this.d;
    const u = (n: 'T' | 'start' | 'H') => this.g.uniform(n);
    // The walk of core/walk.ts: chunks of at most R rows that never cross a mini-batch of K.
    const K = dimConstant(this.k.chunk.layer.minibatch.name);
    L.line(`// Tokens per mini-batch (the spec's \`minibatch ${this.k.chunk.layer.minibatch.name}\`).`);
    L.line(d.constant(K, d.indexType, String(this.k.chunk.K)));
    // Only params are per head; declared without them, `h` would be unused (nvcc warns).
    if (this.k.chunk.layer.params.length > 0) L.line(d.constant('h', d.indexType, `bh % ${u('H')}`));
    L.line(
      `// The ${this.carried().length > 2 ? 'state, accumulator and optimizer state' : 'state and accumulator'} start from the inputs.`,
    );
    for (const [name, h] of this.k.states) {
      const n = this.stateSize.get(name)!;
      this.elements(L, n, (e) => {
        const src = add(mul('bh', n), e);
        for (const role of this.carried())
          L.line(`${this.home(h[role]!, name, role, e)} = ${this.g.port(this.ports.get(role, 'in', name), src)};`);
      });
    }
    L.line(...d.barrier(true).split('\n'), '');
    // Row r of a chunk holds token `token + r`, at mini-batch position `position + r`.
    L.line(d.variable('token', d.indexType, '0'), d.variable('position', d.indexType, u('start')));
    L.open(`while (token < ${u('T')})`);
    const room = d.min(`${K} - position`, `${u('T')} - token`);
    const R = this.k.chunk.rows;
    L.line(d.constant('count', d.indexType, R < this.k.chunk.K ? d.min(String(R), room) : room));
    L.line(d.constant('ends', 'bool', `position + count == ${K}`));
    L.line(d.constant('commit', d.floatType, d.select('ends', this.commitScale(), d.float(0))));
    L.line(d.constant('keep', d.floatType, d.select('ends', d.float(0), d.float(1))));
    if (this.k.stages.some((s) => s.kind === 'compute' && this.readsAccum(s.node))) {
      // A chunk that starts a mini-batch after another ended it finds every accumulator at zero,
      // so products with an accumulator are skipped (their result is zero) on a full prefill.
      L.line(d.constant(ACCUM_LIVE, 'bool', 'token == 0 || position != 0'));
    }
    this.k.stages.forEach((s, i) => {
      L.line('');
      this.stage(L, s);
      const barrier = this.k.barriers[i];
      if (barrier !== 'none') L.line(...d.barrier(barrier === 'storage').split('\n'));
    });
    L.line('', 'token = token + count;', `position = (position + count) % ${K};`);
    L.close();
    const onChip = [...this.k.states].filter(([, h]) => this.carried().some((role) => h[role]!.space !== 'global'));
    if (onChip.length) L.line('', '// Write back the state kept on chip.');
    for (const [name, h] of onChip) {
      const n = this.stateSize.get(name)!;
      this.elements(L, n, (e) => {
        const dst = add(mul('bh', n), e);
        for (const role of this.carried())
          if (h[role]!.space !== 'global')
            L.line(`${this.g.port(this.ports.get(role, 'out', name), dst)} = ${this.home(h[role]!, name, role, e)};`);
      });
    }
  }

  /** What each state tensor carries between chunks: the state, its accumulator, and an optimizer state with momentum. */
  private carried(): Carried[] {
    return this.k.chunk.layer.update.rules.momentum ? ['state', 'accum', 'opt'] : ['state', 'accum'];
  }

  private commitScale(): string {
    const s = this.k.chunk.layer.update.scale;
    if (s.kind === 'position') return this.g.port(this.ports.get('scale', 'in', 'scale'), String(this.k.chunk.K - 1));
    return this.d.float(s.kind === 'constant' ? s.value : 1);
  }

  private stage(L: Lines, s: Stage): void {
    const d = this.d;
    const nodes = this.k.program.nodes;
    if (s.kind === 'update') {
      const n = this.stateSize.get(s.state)!;
      const h = this.k.states.get(s.state)!;
      const opt = s.optNode;
      const what = opt === undefined ? 'its accumulator' : 'its accumulator and optimizer state';
      L.line(this.describe(s.stateNode, `Update ${commentText(s.state)} and ${what}`));
      this.elements(L, n, (e) => {
        const index = Index.flat(nodes[s.stateNode].shape, e);
        // Every new value is computed before any is stored: each reads the old ones.
        L.line(
          ...this.values.statements((v) => [
            d.constant('next_state', d.floatType, v(s.stateNode, index)),
            d.constant('next_accum', d.floatType, v(s.accumNode, index)),
            ...(opt === undefined ? [] : [d.constant('next_opt', d.floatType, v(opt, index))]),
          ]),
        );
        L.line(
          `${this.home(h.state, s.state, 'state', e)} = next_state;`,
          `${this.home(h.accum, s.state, 'accum', e)} = next_accum;`,
        );
        if (opt !== undefined) L.line(`${this.home(h.opt!, s.state, 'opt', e)} = next_opt;`);
      });
      return;
    }
    const node = nodes[s.node];
    if (s.kind === 'output') {
      const width = size(node.shape.slice(1));
      L.line(this.describe(s.node, "Write this chunk's output rows"));
      L.open(d.loop('e', 'tid', `count * ${width}`, String(this.k.invocations)));
      const flat = add(mul(`bh * ${this.g.uniform('T')} + token`, width), 'e');
      const output = this.g.port(this.ports.get('output', 'out', 'output'), flat);
      L.line(...this.values.statements((v) => [`${output} = ${v(s.node, Index.flat(node.shape, 'e'))};`]));
      L.close();
      return;
    }
    const target = (flat: string) => this.place(this.k.buffers.get(s.node)!, flat);
    const op = node.op;
    if (op.kind === 'input') {
      // Rows past the chunk's tokens read as 0, without touching memory out of range.
      const width = size(node.shape.slice(1));
      const port = this.ports.ofInput(op.name);
      if (!port) throw new Error(`the buffered input ${op.name} is not a port`);
      L.line(`// Stage the ${port.role} ${port.name} for this chunk.`);
      this.elements(L, size(node.shape), (e) => {
        const r = div(e, width);
        L.line(d.variable('x', d.floatType, d.float(0)));
        const global = add(mul(`bh * ${this.g.uniform('T')} + token + ${r}`, width), mod(e, width));
        L.open(`if (${r} < count)`)
          .line(`x = ${this.g.port(port, global)};`)
          .close();
        L.line(`${target(e)} = x;`);
      });
      return;
    }
    const what = { matmul: 'product', sum: 'sum' }[op.kind as string] ?? 'elementwise';
    L.line(this.describe(s.node, `${showShape(node.shape)} ${what}`));
    if (op.kind === 'matmul') {
      this.matmul(L, s.node, target);
      return;
    }
    this.elements(L, size(node.shape), (e) => {
      const index = Index.flat(node.shape, e);
      if (op.kind === 'sum') {
        this.sum(L, s.node, index);
        L.line(`${target(e)} = acc;`);
      } else L.line(...this.values.statements((v) => [`${target(e)} = ${v(s.node, index, true)};`]));
    });
  }

  /** A product, each invocation computing register tiles of the result (see schedule/tiles.ts). */
  private matmul(L: Lines, id: number, target: (flat: string) => string): void {
    const d = this.d;
    const n = this.k.program.nodes[id];
    const [a, b] = n.args.map((x) => this.k.program.nodes[x]);
    const { rows, cols } = this.k.tiles.get(id)!;
    const r = n.shape.length;
    const blocks = [...n.shape.slice(0, r - 2), n.shape[r - 2] / rows, n.shape[r - 1] / cols];
    const operand = (x: string) => (d.matmulOperand ? d.matmulOperand(x) : x);
    const range = (k: number) => [...Array(k).keys()];
    this.elements(L, size(blocks), (t) => {
      const block = Index.flat(blocks, t).dims();
      const batch = block.slice(0, r - 2);
      const row = (i: number) => add(mul(block[r - 2], rows), String(i));
      const col = (j: number) => add(mul(block[r - 1], cols), String(j));
      for (const i of range(rows))
        for (const j of range(cols)) L.line(d.variable(`acc${i}_${j}`, d.floatType, d.float(0)));
      const skippable = this.readsAccum(id);
      if (skippable) L.open(`if (${ACCUM_LIVE})`);
      L.open(d.loop('p', '0', String(a.shape[r - 1])));
      L.line(
        ...this.values.statements((v) => [
          ...range(rows).map((i) =>
            d.constant(`a${i}`, d.floatType, operand(v(a.id, Index.dims(a.shape, [...batch, row(i), 'p'])))),
          ),
          ...range(cols).map((j) =>
            d.constant(`b${j}`, d.floatType, operand(v(b.id, Index.dims(b.shape, [...batch, 'p', col(j)])))),
          ),
        ]),
      );
      for (const i of range(rows)) for (const j of range(cols)) L.line(`acc${i}_${j} = acc${i}_${j} + a${i} * b${j};`);
      L.close();
      if (skippable) L.close();
      for (const i of range(rows))
        for (const j of range(cols))
          L.line(`${target(Index.dims(n.shape, [...batch, row(i), col(j)]).flat())} = acc${i}_${j};`);
    });
  }

  /** Whether a product reads an accumulator as an operand directly (not through a buffer). */
  private readsAccum(id: number): boolean {
    const n = this.k.program.nodes[id];
    if (n.op.kind !== 'matmul') return false;
    return n.args.some((x) => {
      const op = this.k.program.nodes[x].op;
      return op.kind === 'input' && !this.k.buffers.has(x) && this.ports.ofInput(op.name)?.role === 'accum';
    });
  }

  private sum(L: Lines, id: number, index: Index): void {
    const d = this.d;
    const n = this.k.program.nodes[id];
    if (n.op.kind !== 'sum') return;
    const axes = n.op.axes;
    const x = this.k.program.nodes[n.args[0]];
    const reducedShape = axes.map((a) => x.shape[a]);
    const reduced = Index.flat(reducedShape, 'p').dims();
    const kept = index.dims();
    const source: string[] = [];
    let ki = 0;
    let ri = 0;
    for (let a = 0; a < x.shape.length; a++) source.push(axes.includes(a) ? reduced[ri++] : kept[ki++]);
    L.line(d.variable('acc', d.floatType, d.float(0)));
    L.open(d.loop('p', '0', String(size(reducedShape))));
    L.line(...this.values.statements((v) => [`acc = acc + ${v(x.id, Index.dims(x.shape, source))};`]));
    L.close();
  }
}
