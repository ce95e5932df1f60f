/**
 * From a scheduled kernel and its signature to the kernel IR: one workgroup per (sequence, head)
 * initialises the state, walks the chunks (core/walk.ts; views staged, stages separated by the
 * scheduled barriers, output rows written, state updated), and writes the state back.
 *
 * The kernel's own values: `bh` (the workgroup's sequence-head), `tid` (the invocation), the
 * uniforms `T`, `start`, `H`, and the dims it declares; the target binds them.
 */
import { showShape, size } from '../../core/shape.ts';
import type { KernelSignature } from '../../core/signature.ts';
import { WALK } from '../dualform/derive.ts';
import type { Carried, ScheduledKernel, Stage, WarpRows } from '../schedule/kernel.ts';
import { add, div, mod, mul, sub } from './affine.ts';
import { KernelDims } from './dims.ts';
import {
  type Buffer,
  type Expr,
  type Kernel,
  type Stmt,
  assign,
  barrier,
  blank,
  comment,
  compare,
  constant,
  everyExpr,
  float,
  nested,
  floatOp,
  int,
  load,
  name,
  select,
  store,
  uniform,
  variable,
} from './ir.ts';
import { guardSinglePassLoops } from './single-pass.ts';
import { layOutOnChip } from './banks.ts';
import * as tensorCores from './tensor-core-stages.ts';
import { LANE_NAME, warpConstants, warpSpan } from './warp-rows.ts';
import { shareValues } from './share.ts';
import { type DimNames, Index, LITERALS } from './tensor-index.ts';
import { Values } from './values.ts';
import { type ChunkOrder, forwardOrder, lowerWalk, ROWS_COMMENT, WALK_NAMES, type WalkInputs } from './walk.ts';
import type { KernelFeatures } from './features.ts';
import { Ports, portText } from './ports.ts';
import { ReadAhead } from './read-ahead.ts';
import { ACCUM_LIVE, LAST_CHUNK, PHASE, Places } from './places.ts';
import { lowerSum, type SumContext } from './sums.ts';

const bh = name('bh');
const TID_NAME = 'tid';
const tid = name(TID_NAME);
const h = name('h');
const token = name(WALK_NAMES.token);
const position = name(WALK_NAMES.position);
const count = name(WALK_NAMES.count);
const ends = name(WALK_NAMES.ends);
const commit = name(WALK.commit);
const keep = name(WALK.keep);

/** Whether statements load from global memory (a port or scratch), in any nested statement. */
function loadsGlobal(body: readonly Stmt[]): boolean {
  return everyExpr(body).some((x) => x.kind === 'load' && x.buffer.kind !== 'workgroup');
}

/**
 * A contraction loop reading global memory (an operand in a port or in scratch) is kept rolled:
 * unrolled, nvcc issues every iteration's global loads at once and holds them all in registers
 * (TTT-Linear's product with its accumulator, read from its input port: 124 -> 230 registers).
 */
function rolledWhereGlobal(body: readonly Stmt[]): { rolled?: true } {
  return loadsGlobal(body) ? { rolled: true } : {};
}

/** Whether statements store to global memory (a port or scratch), in any nested statement. */
function storesGlobal(body: readonly Stmt[]): boolean {
  return body.some((s) => (s.kind === 'store' && s.buffer.kind !== 'workgroup') || storesGlobal(nested(s)));
}

export function lowerKernel(
  k: ScheduledKernel,
  signature: KernelSignature,
  /** Spec source text, to annotate each stage with the line it comes from. */
  sourceLines: readonly string[],
  features: KernelFeatures = {},
): Kernel {
  return new Lowering(k, signature, sourceLines, features).kernel();
}

/** The lowering of the forward kernel; variants (compiler/kernel/checkpoint.ts, backward.ts) extend it. */
export class Lowering {
  protected readonly values: Values;
  protected readonly stateSize: Map<string, number>;
  protected readonly places: Places;
  private readonly ports: Ports;
  private readonly dims: KernelDims;
  protected readonly K: Expr;
  protected readonly names: DimNames;
  protected readonly carried: Carried[];
  private named = 0;
  /** Each stage's index, for the stages' warp rows. */
  private stageIndex: Map<Stage, number> | undefined;
  private ahead: ReadAhead | undefined;

  constructor(
    protected readonly k: ScheduledKernel,
    signature: KernelSignature,
    private readonly sourceLines: readonly string[],
    private readonly features: KernelFeatures,
  ) {
    this.ports = new Ports(signature);
    this.values = new Values(k.program, {
      isBuffered: (id) => k.buffers.has(id) || (k.updateProducts?.has(id) ?? false),
      buffer: (id, at) => this.places.node(id, at),
      input: (key, index) => this.input(key, index),
    });
    this.stateSize = new Map(k.chunk.layer.states.map((s) => [s.name, size(s.shape)]));
    this.dims = new KernelDims(k.chunk.layer, k.chunk.rows);
    this.K = this.dims.K;
    this.names = this.dims.names;
    this.places = new Places(k, this.ports, this.names);
    this.carried = k.chunk.layer.update.rules.momentum ? ['state', 'accum', 'opt'] : ['state', 'accum'];
  }

  kernel(): Kernel {
    const lowered = this.body();
    const body = [...warpConstants(lowered, this.features.lanes), ...lowered];
    const onChip = layOutOnChip(body, { swizzle: !this.features.rowMajorOnChip });
    return {
      invocations: this.k.invocations,
      dims: this.dims.declared(body),
      ports: this.ports.all(),
      workgroupFloats: this.k.workgroupFloats,
      scratchFloats: this.k.scratchFloats,
      body: guardSinglePassLoops(body, this.ownValues()),
      onChip,
    };
  }

  /** How many values the kernel's own index names take: an invocation's, and its lane's in a warp. */
  private ownValues(): Map<string, number> {
    const lanes = this.features.lanes;
    return new Map([[TID_NAME, this.k.invocations], ...(lanes ? [[LANE_NAME, lanes] as const] : [])]);
  }

  /** Named values for the statements of one group, each read more than once computed once. */
  protected shared(group: Stmt[]): Stmt[] {
    return shareValues(group, () => `v${this.named++}`);
  }

  protected input(key: string, index: Index): Expr {
    const port = this.ports.ofInput(key);
    if (!port) {
      if (key === WALK.mask) return select(compare('<', index.dims()[0], count), float(1), float(0));
      if (key === WALK.commit) return commit;
      if (key === WALK.keep) return keep;
      throw new Error(`input ${key} is neither a port nor the walk's`);
    }
    const buffer: Buffer = { kind: 'port', port };
    switch (port.role) {
      case 'scale':
        // Row r's scale is that of position `position + r`; rows past the chunk's tokens are
        // masked, and clamping keeps their read in range.
        return load(buffer, { kind: 'min', a: add(position, index.flat()), b: sub(this.K, int(1)) });
      case 'param':
        return load(buffer, add(mul(h, size(index.shape)), index.flat()));
      case 'state':
      case 'accum':
      case 'opt':
        const at = this.places.stateIndex(port.name, index.flat());
        return this.places.readHome(this.k.states.get(port.name)![port.role]!, port.name, port.role, at);
    }
    throw new Error(`the ${port.role} ${port.name} has no inline reading`);
  }

  /** A stage's comment: what it computes and the spec line it comes from (the printer escapes it). */
  private describe(id: number, what: string): Stmt {
    const o = this.k.program.nodes[id].origin;
    if (!o) return comment(`${what}.`);
    return comment(`${what}, from line ${o.start.line}: ${(this.sourceLines[o.start.line - 1] ?? '').trim()}`);
  }

  /** `body(e)` for every element e < n, the workgroup's invocations taking every `invocations`-th. */
  protected elements(n: Expr | number, body: Stmt[]): Stmt {
    const to = typeof n === 'number' ? int(n) : n;
    return { kind: 'for', counter: 'e', from: tid, to, step: int(this.k.invocations), body };
  }

  /** The warps that own a stage's rows, if any (compiler/schedule/warp-rows.ts). */
  protected warpRows(s: Stage): WarpRows | undefined {
    if (!this.k.warpRows) return undefined;
    this.stageIndex ??= new Map(this.k.stages.map((stage, i) => [stage, i]));
    return this.k.warpRows.get(this.stageIndex.get(s)!);
  }

  /** `body(e)` for every element e < n of a stage: by the warps owning its rows where it has them. */
  protected stageElements(s: Stage, n: Expr | number, body: Stmt[]): Stmt {
    const rows = this.warpRows(s);
    return rows ? warpSpan(rows, rows.rowsPerWarp * rows.rowElements, n, body) : this.elements(n, body);
  }

  protected body(): Stmt[] {
    const out: Stmt[] = [];
    // Only params are per head; declared without them, `h` would be unused (nvcc warns).
    if (this.k.chunk.layer.params.length > 0) out.push(constant('h', 'index', mod(bh, uniform('H'))));
    if (this.pingPongs())
      out.push(
        comment('Homes kept in two slots: each chunk reads slot `phase` and its update writes the other.'),
        variable(PHASE, 'index', int(0)),
      );
    const what = this.carried.length > 2 ? 'state, accumulator and optimizer state' : 'state and accumulator';
    out.push(comment(`The ${what} start from the inputs.`));
    const e = name('e');
    for (const [state, h] of this.k.states) {
      const n = this.stateSize.get(state)!;
      const src = add(mul(bh, n), e);
      const at = this.places.stateIndex(state, e);
      const roles = this.carried.filter((role) => h[role]!.space !== 'ports');
      if (roles.length === 0) continue;
      out.push(
        this.elements(
          n,
          roles.map((role) =>
            this.places.writeHome(h[role]!, state, role, at, load(this.ports.get(role, 'in', state), src), 'current'),
          ),
        ),
      );
    }
    out.push(barrier(true), blank);
    out.push(...this.walk(this.chunk(), this.readAhead.prologue()));
    const onChip = [...this.k.states].filter(([, h]) => this.carried.some((role) => Places.kept(h[role]!)));
    if (onChip.length) out.push(blank, comment('Write back the state kept on chip.'));
    for (const [state, h] of onChip) {
      const n = this.stateSize.get(state)!;
      const dst = add(mul(bh, n), e);
      const at = this.places.stateIndex(state, e);
      out.push(
        this.elements(
          n,
          this.carried
            .filter((role) => Places.kept(h[role]!))
            .map((role) =>
              store(this.ports.get(role, 'out', state), dst, this.places.readHome(h[role]!, state, role, at)),
            ),
        ),
      );
    }
    return out;
  }

  /** The chunks of the call, each processed by `chunk`, after `prologue` (the read-ahead's). */
  protected walk(chunk: Stmt[], prologue: Stmt[]): Stmt[] {
    return [...prologue, ROWS_COMMENT, ...lowerWalk(this.walkInputs(), chunk)];
  }

  /** The order in which `walk` takes the chunks, for the read-ahead. */
  protected chunkOrder(): ChunkOrder {
    return forwardOrder(this.walkInputs());
  }

  /** The read-ahead's statements (read-ahead.ts), for the order the walk takes the chunks in. */
  private get readAhead(): ReadAhead {
    this.ahead ??= new ReadAhead(this.k, this.ports, this.names, this.walkInputs(), this.chunkOrder());
    return this.ahead;
  }

  protected walkInputs(): WalkInputs {
    return { start: uniform('start'), T: uniform('T'), K: this.K, rows: this.dims.rows };
  }

  /** One chunk: the walk's factors, then every stage with the barrier after it. */
  protected chunk(): Stmt[] {
    const out: Stmt[] = [
      constant(WALK.commit, 'float', select(ends, this.commitScale(), float(0))),
      constant(WALK.keep, 'float', select(ends, float(0), float(1))),
    ];
    const passed = [...this.k.states.values()].some((h) => this.carried.some((role) => h[role]!.space === 'ports'));
    if (passed || this.k.stages.some((s) => s.kind === 'compute' && this.readsAccum(s.node))) {
      // A chunk that starts a mini-batch after another ended it finds every accumulator at zero,
      // so products with an accumulator are skipped (their result is zero) on a full prefill, and
      // an accumulator passed through its ports is read from its input only where this holds.
      const live: Expr = { kind: 'or', a: compare('==', token, int(0)), b: compare('!=', position, int(0)) };
      out.push(constant(ACCUM_LIVE, 'bool', live));
    }
    if (passed) out.push(constant(LAST_CHUNK, 'bool', compare('==', add(token, count), uniform('T'))));
    out.push(...this.chunkStart());
    out.push(...this.readAhead.chunkStart());
    this.k.stages.forEach((s, i) => {
      out.push(blank, ...this.stage(s));
      const b = this.k.barriers[i];
      if (b === 'warp') out.push({ kind: 'warp-barrier' });
      else if (b !== 'none') out.push(barrier(b === 'storage'));
      const copies = this.readAhead.next(i);
      if (copies.length > 0) out.push(blank, ...copies);
    });
    const last = this.readAhead.next();
    if (last.length > 0) out.push(blank, barrier(false), ...last);
    if (this.pingPongs())
      out.push(
        blank,
        comment('The next chunk reads the slots this one wrote (after the barrier above).'),
        assign(PHASE, sub(int(1), name(PHASE))),
      );
    return out;
  }

  /** Whether a home takes two slots (OnChipHome `pingPong`), so the kernel keeps a phase. */
  private pingPongs(): boolean {
    return [...this.k.states.values()].some((h) => Object.values(h).some((x) => 'pingPong' in x && x.pingPong));
  }

  /** Statements at the start of each chunk, after the walk's factors (a variant's own; none here). */
  protected chunkStart(): Stmt[] {
    return [];
  }

  private commitScale(): Expr {
    const s = this.k.chunk.layer.update.scale;
    if (s.kind === 'position') return load(this.ports.get('scale', 'in', 'scale'), sub(this.K, int(1)));
    return float(s.kind === 'constant' ? s.value : 1);
  }

  protected stage(s: Stage): Stmt[] {
    const nodes = this.k.program.nodes;
    const e = name('e');
    if (s.kind === 'update') return this.update(s);
    const node = nodes[s.node];
    if (s.kind === 'output') {
      const width = this.names(size(node.shape.slice(1)));
      const flat = add(mul(add(mul(bh, uniform('T')), token), width), e);
      const value = this.values.value(s.node, Index.flat(node.shape, e, this.names));
      return [
        this.describe(s.node, "Write this chunk's output rows"),
        this.stageElements(
          s,
          mul(count, width),
          this.shared([store(this.ports.get('output', 'out', 'output'), flat, value)]),
        ),
      ];
    }
    const target = (index: Index, value: Expr): Stmt => {
      const at = this.places.node(s.node, index);
      if (at.kind !== 'load') throw new Error('a placement is a load');
      return store(at.buffer, at.index, value);
    };
    const op = node.op;
    if (op.kind === 'input') {
      const width = this.names(size(node.shape.slice(1)));
      const port = this.ports.ofInput(op.name);
      if (!port) throw new Error(`the buffered input ${op.name} is not a port`);
      const r = div(e, width);
      const ahead = this.k.prefetch?.has(s.node) ? ', read ahead' : '';
      const repeat = port.role === 'view' ? "; rows past the chunk's tokens repeat its last" : '';
      const staged = comment(`Stage ${portText(port)} for this chunk${ahead}${repeat}.`);
      const global = (row: Expr) => add(mul(add(add(mul(bh, uniform('T')), token), row), width), mod(e, width));
      // Rows past the chunk's tokens: a view repeats the chunk's last token, the per-token rates
      // and gates read 0, and no read leaves the call's rows. Every update masks those rows out; a
      // copy of a token keeps them finite wherever the tokens are, where zeros could make a padded
      // row's loss singular (0.5 / sum(...) is inf at a zero row, and 0 · inf is NaN). The copy
      // comes from global memory: a slot read ahead may be staged in place, and holds no rows past
      // the call.
      const last = load({ kind: 'port', port }, global(sub(count, int(1))));
      const padded: Stmt[] =
        port.role === 'view' ? [{ kind: 'if', condition: compare('<=', count, r), body: [assign('x', last)] }] : [];
      return [
        staged,
        this.stageElements(s, size(node.shape), [
          variable('x', 'float', float(0)),
          {
            kind: 'if',
            condition: compare('<', r, count),
            body: [assign('x', this.readAhead.staged(s.node, port, global(r), e))],
          },
          ...padded,
          target(Index.flat(node.shape, e, this.names), name('x')),
          ...this.copyOfView(s.node, r, mod(e, width), name('x')),
        ]),
      ];
    }
    const what = { matmul: 'product', sum: 'sum' }[op.kind as string] ?? 'elementwise';
    const head = this.describe(s.node, `${showShape(node.shape)} ${what}`);
    if (op.kind === 'matmul')
      return [
        head,
        this.k.tensorCores?.products.has(s.node)
          ? tensorCores.product(this.tensorCoreContext(), s.node, (at, value) => [target(at, value)])
          : this.matmul(s.node, target, this.warpRows(s)),
      ];
    const index = Index.flat(node.shape, e, this.names);
    if (op.kind === 'sum')
      return [head, ...lowerSum(this.sumContext(), s.node, index, (value) => target(index, value), this.warpRows(s))];
    const value = this.values.value(s.node, index, true);
    return [head, this.stageElements(s, size(node.shape), this.shared([target(index, value)]))];
  }

  /** The store of a view's element (row, col) in its bf16 copy for tensor-core operands, where it has one. */
  private copyOfView(id: number, row: Expr, col: Expr, value: Expr): Stmt[] {
    const copy = this.k.tensorCores?.copies?.get(id);
    if (!copy) return [];
    return [{ kind: 'store-bf16', index: add(add(int(copy.offset * 2), mul(row, copy.rowStride)), col), value }];
  }

  /**
   * A state's update: the new state, accumulator and optimizer state of every element, from the
   * products the update computes (on tensor cores, whose warps then update the state's tiles from
   * their accumulators, or element by element).
   */
  private update(s: Extract<Stage, { kind: 'update' }>): Stmt[] {
    const what = s.optNode === undefined ? 'its accumulator' : 'its accumulator and optimizer state';
    const out = [this.describe(s.stateNode, `Update ${s.state} and ${what}`)];
    const e = name('e');
    const product = tensorCores.updateProduct(this.k, s.state);
    if (product !== undefined)
      out.push(
        this.describe(
          product,
          `Its product on tensor cores: each warp updates its 16x8 tiles of ${s.state} in registers`,
        ),
      );
    const loop =
      product === undefined
        ? this.stageElements(s, this.stateSize.get(s.state)!, [
            ...this.updateProducts(s.state, e),
            ...this.updateElement(s, this.places.stateIndex(s.state, e)),
          ])
        : tensorCores.update(this.tensorCoreContext(), product, (at) => this.updateElement(s, at));
    // An update touching global memory (a carried value read from or written to its port) stays
    // rolled too: unrolled, even a loop of one iteration per lane cost gated_linear 99 -> 136
    // registers on sm_90.
    const rolled = loop.kind === 'for' && (loadsGlobal([loop]) || storesGlobal([loop]));
    return [...out, rolled ? { ...loop, rolled } : loop];
  }

  /** The statements that update element `at` of a state; every new value is computed before any is stored (each reads the old ones). */
  private updateElement(s: Extract<Stage, { kind: 'update' }>, at: Index): Stmt[] {
    const h = this.k.states.get(s.state)!;
    const next = (role: Carried) => `next_${role}`;
    const roles: [Carried, number][] = [
      ['state', s.stateNode],
      ['accum', s.accumNode],
      ...(s.optNode === undefined ? [] : [['opt', s.optNode] as [Carried, number]]),
    ];
    return [
      ...this.shared(roles.map(([role, id]) => constant(next(role), 'float', this.values.value(id, at)))),
      ...roles.map(([role]) => this.places.writeHome(h[role]!, s.state, role, at, name(next(role)))),
    ];
  }

  /**
   * A product, each invocation computing register tiles of the result (see schedule/tiles.ts); where
   * warps own its rows, each warp's lanes take the tiles of its rows.
   */
  private matmul(id: number, target: (at: Index, value: Expr) => Stmt, owners?: WarpRows): Stmt {
    const n = this.k.program.nodes[id];
    const [a, b] = n.args.map((x) => this.k.program.nodes[x]);
    const { rows, cols } = owners?.tile ?? this.k.tiles.get(id)!;
    const r = n.shape.length;
    const blocks = [...n.shape.slice(0, r - 2), n.shape[r - 2] / rows, n.shape[r - 1] / cols];
    const range = (k: number) => [...Array(k).keys()];
    const t = name('e');
    const p = name('p');
    const block = Index.flat(blocks, t, LITERALS).dims();
    const batch = block.slice(0, r - 2);
    // A tile's rows and columns are `blocks` apart, so neighbouring invocations take neighbouring
    // rows and columns: a warp's reads of a row (or, swizzled, a column) then hit distinct banks.
    // Where warps own rows, a tile's rows are consecutive instead, so each warp's rows are its own.
    const row = (i: number) =>
      owners ? add(mul(block[r - 2], rows), int(i)) : add(block[r - 2], int(i * blocks[r - 2]));
    const col = (j: number) => add(block[r - 1], int(j * blocks[r - 1]));
    const acc = (i: number, j: number) => `acc${i}_${j}`;
    const tile = range(rows).flatMap((i) => range(cols).map((j) => [i, j] as const));
    const operand = (x: Expr): Expr => ({ kind: 'operand', x });
    const step: Stmt[] = [
      ...this.shared([
        ...range(rows).map((i) =>
          constant(
            `a${i}`,
            'float',
            operand(this.values.value(a.id, Index.dims(a.shape, [...batch, row(i), p], this.names))),
          ),
        ),
        ...range(cols).map((j) =>
          constant(
            `b${j}`,
            'float',
            operand(this.values.value(b.id, Index.dims(b.shape, [...batch, p, col(j)], this.names))),
          ),
        ),
      ]),
      ...tile.map(([i, j]) =>
        assign(acc(i, j), floatOp('+', name(acc(i, j)), floatOp('*', name(`a${i}`), name(`b${j}`)))),
      ),
    ];
    const loop: Stmt = {
      kind: 'for',
      counter: 'p',
      from: int(0),
      to: this.names(a.shape[r - 1]),
      step: int(1),
      body: step,
      ...rolledWhereGlobal(step),
    };
    const body: Stmt[] = [
      ...tile.map(([i, j]) => variable(acc(i, j), 'float', float(0))),
      this.readsAccum(id) ? { kind: 'if', condition: name(ACCUM_LIVE), body: [loop] } : loop,
      ...tile.map(([i, j]) => target(Index.dims(n.shape, [...batch, row(i), col(j)], this.names), name(acc(i, j)))),
    ];
    if (!owners) return this.elements(size(blocks), body);
    // A warp's rows are consecutive rows of tiles: consecutive blocks.
    return warpSpan(owners, (owners.rowsPerWarp / rows) * blocks[r - 1], size(blocks), body);
  }

  /**
   * Element `e` of each product the update of `state` computes where it reads it (a gradient of
   * the state's shape), as `product<id>`: one term per row of the chunk, with no buffer for it.
   */
  private updateProducts(state: string, e: Expr): Stmt[] {
    const out: Stmt[] = [];
    for (const [id, of] of this.k.updateProducts ?? []) {
      if (of !== state) continue;
      const n = this.k.program.nodes[id];
      const [a, b] = n.args.map((x) => this.k.program.nodes[x]);
      const r = n.shape.length;
      const at = Index.flat(n.shape, e, this.names).dims();
      const [batch, row, col] = [at.slice(0, r - 2), at[r - 2], at[r - 1]];
      const p = name('p');
      const acc = tensorCores.updateProductName(id);
      const operand = (x: Expr): Expr => ({ kind: 'operand', x });
      const term = floatOp(
        '*',
        operand(this.values.value(a.id, Index.dims(a.shape, [...batch, row, p], this.names))),
        operand(this.values.value(b.id, Index.dims(b.shape, [...batch, p, col], this.names))),
      );
      const body = this.shared([assign(acc, floatOp('+', name(acc), term))]);
      const loop: Stmt = {
        kind: 'for',
        counter: 'p',
        from: int(0),
        to: this.names(a.shape[r - 1]),
        step: int(1),
        body,
        ...rolledWhereGlobal(body),
      };
      out.push(
        this.describe(id, `Element e of the ${showShape(n.shape)} product, summed here rather than buffered`),
        variable(acc, 'float', float(0)),
        this.readsAccum(id) ? { kind: 'if', condition: name(ACCUM_LIVE), body: [loop] } : loop,
      );
    }
    return out;
  }

  /** What a tensor-core stage's lowering reads of this kernel (./tensor-core-stages.ts). */
  private tensorCoreContext(): tensorCores.TensorCoreContext {
    return {
      k: this.k,
      values: this.values,
      names: this.names,
      shared: (group) => this.shared(group),
      live: (id) => (this.readsAccum(id) ? name(ACCUM_LIVE) : undefined),
    };
  }

  /** What a sum stage's lowering reads of this kernel (sums.ts). */
  private sumContext(): SumContext {
    return {
      program: this.k.program,
      invocations: this.k.invocations,
      values: this.values,
      names: this.names,
      features: this.features,
      shared: (group) => this.shared(group),
      elements: (n, body) => this.elements(n, body),
    };
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
}
