/**
 * The decode cache: per sequence and head the inner state θ at the start of the current
 * mini-batch, the accumulator A of the gradients taken in it so far, an update rule's optimizer
 * states (momentum's u, core/update-rule.ts), and how many tokens the layer has seen (position
 * mod K is where the next token sits in its mini-batch). Saved as safetensors: `state.NAME`,
 * `accum.NAME` and `opt.NAME` [B, H, ...] in F64, the position in `__metadata__`.
 */
import type { Tensor } from '../../core/tensor.ts';
import { optimizerState } from '../../core/update-rule.ts';
import { type SafeFile, readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../safetensors.ts';

/** What a cache must hold for one layer. */
export interface CacheLayout {
  heads: number;
  miniBatch: number;
  /** The spec's states, per-head shapes. */
  states: readonly { name: string; shape: readonly number[] }[];
  /** The states whose update rule carries an optimizer state of the state's shape. */
  optimizerStates: readonly string[];
}

export class CacheError extends Error {}

const FORMAT = 'tttc-layer-cache';
const showShape = (s: readonly number[]) => `[${s.join(', ')}]`;

/** `O`: the names of the states with an optimizer state, as a generated module types them. */
export class LayerCache<O extends string = string> {
  private constructor(
    readonly layout: CacheLayout,
    readonly batch: number,
    private statesNow: Map<string, Tensor>,
    private accumsNow: Map<string, Tensor>,
    private optsNow: Map<O, Tensor>,
    private tokens: number,
  ) {}

  /** A cache before the first token: every sequence starts from the initial state [H, ...]. */
  static fresh(layout: CacheLayout, batch: number, initial: ReadonlyMap<string, Tensor>): LayerCache {
    const states = new Map<string, Tensor>();
    const accums = new Map<string, Tensor>();
    const opts = new Map<string, Tensor>();
    for (const s of layout.states) {
      const init = initial.get(s.name)!;
      const data = new Float64Array(batch * init.data.length);
      for (let b = 0; b < batch; b++) data.set(init.data, b * init.data.length);
      states.set(s.name, { shape: [batch, layout.heads, ...s.shape], data });
      accums.set(s.name, { shape: [batch, layout.heads, ...s.shape], data: new Float64Array(data.length) });
      if (layout.optimizerStates.includes(s.name))
        opts.set(s.name, { shape: [batch, layout.heads, ...s.shape], data: new Float64Array(data.length) });
    }
    return new LayerCache(layout, batch, states, accums, opts, 0);
  }

  /** Tokens seen so far. */
  get position(): number {
    return this.tokens;
  }

  /** The next token's place in its mini-batch. */
  get offset(): number {
    return this.tokens % this.layout.miniBatch;
  }

  /** [B, H, ...] per state: θ at the start of the current mini-batch. */
  get states(): ReadonlyMap<string, Tensor> {
    return this.statesNow;
  }

  /** [B, H, ...] per state: the current mini-batch's gradient sum. */
  get accums(): ReadonlyMap<string, Tensor> {
    return this.accumsNow;
  }

  /** [B, H, ...] per state with an optimizer state: momentum's u after the tokens seen. */
  get opts(): ReadonlyMap<O, Tensor> {
    return this.optsNow;
  }

  /** Takes the inner loop's results after `count` more tokens (all at once, so a failed call changes nothing). */
  advance(
    states: Map<string, Tensor>,
    accums: Map<string, Tensor>,
    opts: Map<string, Tensor> | undefined,
    count: number,
  ): void {
    if (this.layout.optimizerStates.some((s) => !opts?.has(s)))
      throw new CacheError(
        `the inner loop returned no optimizer state for ${this.layout.optimizerStates.map(optimizerState).join(', ')}`,
      );
    this.statesNow = states;
    this.accumsNow = accums;
    this.optsNow = new Map(this.layout.optimizerStates.map((s) => [s as O, opts!.get(s)!]));
    this.tokens += count;
  }

  async save(path: string): Promise<void> {
    const tensors = new Map<string, { dtype: 'F64'; shape: number[]; data: Float64Array }>();
    for (const [n, t] of this.statesNow) tensors.set(`state.${n}`, { dtype: 'F64', shape: [...t.shape], data: t.data });
    for (const [n, t] of this.accumsNow) tensors.set(`accum.${n}`, { dtype: 'F64', shape: [...t.shape], data: t.data });
    for (const [n, t] of this.optsNow)
      tensors.set(optimizerState(n), { dtype: 'F64', shape: [...t.shape], data: t.data });
    const metadata = {
      format: FORMAT,
      position: String(this.tokens),
      heads: String(this.layout.heads),
      mini_batch_size: String(this.layout.miniBatch),
    };
    await writeSafetensorsFile(path, tensors, metadata);
  }

  static async load(path: string, layout: CacheLayout): Promise<LayerCache> {
    return LayerCache.fromSafeFile(await readSafetensorsFile(path), layout);
  }

  /** A saved cache, checked against the layer that will continue from it. */
  static fromSafeFile(file: SafeFile, layout: CacheLayout): LayerCache {
    const fail = (message: string): never => {
      throw new CacheError(`${file.name}: ${message}`);
    };
    const meta = file.metadata;
    if (meta.format !== FORMAT)
      fail(`not a layer cache (__metadata__ format is ${JSON.stringify(meta.format)}, expected '${FORMAT}')`);
    if (Number(meta.heads) !== layout.heads) fail(`cache is for ${meta.heads} heads, the layer has ${layout.heads}`);
    if (Number(meta.mini_batch_size) !== layout.miniBatch)
      fail(`cache is for mini-batch size ${meta.mini_batch_size}, the layer has K = ${layout.miniBatch}`);
    const position = Number(meta.position);
    if (!Number.isSafeInteger(position) || position < 0)
      fail(`__metadata__ position '${meta.position}' is not a token count`);

    let batch: number | undefined;
    const read = (name: string, perHead: readonly number[]): Tensor => {
      const t = file.tensors.get(name);
      if (!t) return fail(`missing tensor '${name}' (expected shape [B, ${layout.heads}, ${perHead.join(', ')}])`);
      if (t.dtype !== 'F64' && t.dtype !== 'F32') fail(`tensor '${name}' has dtype ${t.dtype}; expected F64 or F32`);
      batch ??= t.shape[0];
      const expected = [batch, layout.heads, ...perHead];
      if (showShape(t.shape) !== showShape(expected))
        fail(`tensor '${name}' has shape ${showShape(t.shape)}, expected ${showShape(expected)}`);
      return { shape: expected, data: Float64Array.from(toFloat64(t)) };
    };
    const states = new Map(layout.states.map((s) => [s.name, read(`state.${s.name}`, s.shape)]));
    const accums = new Map(layout.states.map((s) => [s.name, read(`accum.${s.name}`, s.shape)]));
    const opts = new Map(
      layout.states
        .filter((s) => layout.optimizerStates.includes(s.name))
        .map((s) => [s.name, read(optimizerState(s.name), s.shape)]),
    );
    return new LayerCache(layout, batch!, states, accums, opts, position);
  }
}
