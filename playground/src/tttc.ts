/**
 * The playground's one door into the compiler and the runtime: every call the page makes into
 * tttc goes through this module, in plain types, so that the page never touches compiler
 * internals and the door can be rewired to a public API without touching the rest.
 */
import { gradientProgram } from '../../compiler/autodiff/gradient-program.ts';
import { BUILTINS } from '../../compiler/check/builtins.ts';
import type { Diagnostic } from '../../compiler/diagnostics/diagnostic.ts';
import { type ChunkProgram, deriveChunkProgram } from '../../compiler/dualform/derive.ts';
import type { FormRequest } from '../../compiler/dualform/forms.ts';
import { execute } from '../../compiler/ir/execute.ts';
import type { Program } from '../../compiler/ir/ir.ts';
import { printProgram } from '../../compiler/ir/print.ts';
import { type Compiled, compileSpec } from '../../compiler/pipeline.ts';
import { parse } from '../../compiler/syntax/parse.ts';
import { size } from '../../core/shape.ts';
import type { Tensor } from '../../core/tensor.ts';
import { renderCuda } from '../../targets/cuda/render.ts';
import { stem } from '../../targets/target.ts';
import { renderWgsl } from '../../targets/wgsl/render.ts';
import { innerLoopInputs, type InnerLoopInputs, type InnerLoopOutputs } from '../../runtime/inner-loop.ts';
import { runReference } from '../../compiler/reference/inner-loop.ts';
import { getGPUDevice } from '../../runtime/webgpu/device.ts';
import type { WebGPUInnerLoop } from '../../runtime/webgpu/inner-loop.ts';
import { webgpuInnerLoop } from '../../cli/link.ts';
import { outputPort } from '../../core/signature.ts';

export type { FormRequest, Tensor };

export interface SpecOptions {
  /** The file name diagnostics and generated code mention. */
  file: string;
  /** `-D NAME=VALUE` overrides; names the spec does not declare are dropped. */
  dims: Readonly<Record<string, number>>;
  form: FormRequest;
}

export interface PlaygroundDiagnostic {
  code: string;
  severity: 'error' | 'warning';
  message: string;
  hint: string;
  /** 0-based character offsets into the spec, end exclusive. */
  from: number;
  to: number;
  line: number;
  col: number;
}

export interface TensorInfo {
  name: string;
  shape: readonly number[];
}

export interface FormInfo {
  state: string;
  form: string;
  /** Why the state has no dual form, when it has none. */
  why?: { code: string; message: string; line: number };
}

/** What `tttc check` reports about a layer. */
export interface LayerSummary {
  name: string;
  /** Every size `-D` can override: the dims, then the minibatch, in declaration order. */
  sizes: { name: string; value: number; minibatch: boolean }[];
  states: TensorInfo[];
  params: TensorInfo[];
  /** The loss's views, then those only the output reads. */
  lossViews: TensorInfo[];
  outputViews: TensorInfo[];
  output: readonly number[];
  lr: { kind: 'token' } | { kind: 'constant'; value: number };
  scale: { kind: 'position' } | { kind: 'none' } | { kind: 'constant'; value: number };
  K: number;
  forms: FormInfo[];
}

/** Generated code with, for each of its lines, the spec line it comes from (0 when none). */
export interface GeneratedCode {
  path: string;
  text: string;
  specLines: number[];
}

export interface Analysis {
  diagnostics: PlaygroundDiagnostic[];
  /** Present when the spec checks and derives. */
  layer?: CompiledLayer;
}

const toPlain = (d: Diagnostic): PlaygroundDiagnostic => ({
  code: d.code,
  severity: d.severity,
  message: d.message,
  hint: d.hint,
  from: d.span.start.offset,
  to: d.span.end.offset,
  line: d.span.start.line,
  col: d.span.start.col,
});

/** The sizes the spec declares (dims and minibatch), read from its syntax tree. */
function declaredSizes(text: string, file: string): Set<string> {
  const members = parse(text, file).source.layer?.members ?? [];
  return new Set(members.flatMap((m) => (m.kind === 'dim' || m.kind === 'minibatch' ? [m.name] : [])));
}

/** Check and derive a spec, as `tttc check` does: the diagnostics, and the layer when it compiles. */
export function analyse(text: string, options: SpecOptions): Analysis {
  const declared = declaredSizes(text, options.file);
  const overrides = new Map(Object.entries(options.dims).filter(([name]) => declared.has(name)));
  const result = compileSpec(text, { file: options.file, overrides, form: options.form });
  const diagnostics = result.diagnostics.map(toPlain);
  return result.ok ? { diagnostics, layer: new CompiledLayer(result.compiled) } : { diagnostics };
}

/**
 * The spec line each line of generated code comes from: the printers head every stage with a
 * comment, ending in `line N: <spec text>` when the stage comes from the spec; a line belongs
 * to the stage whose comment is above it.
 */
function specLinesOf(text: string): number[] {
  let current = 0;
  return text.split('\n').map((line) => {
    if (/^\s*\/\//.test(line)) current = Number(/\bline (\d+):/.exec(line)?.[1] ?? 0);
    return current;
  });
}

export class CompiledLayer {
  readonly summary: LayerSummary;
  private lossProgram?: Program;
  private stepChunk?: ChunkProgram;

  constructor(private readonly compiled: Compiled) {
    const L = compiled.layer;
    const sig = compiled.signature;
    const lossNames = new Set(L.loss.views.map((v) => v.name));
    const tensor = (t: { name: string; shape: readonly number[] }) => ({ name: t.name, shape: [...t.shape] });
    const sizes = L.ast.members.flatMap((m) =>
      m.kind === 'dim'
        ? [{ name: m.name, value: L.dims.get(m.name)!, minibatch: false }]
        : m.kind === 'minibatch'
          ? [{ name: m.name, value: L.minibatch.size, minibatch: true }]
          : [],
    );
    this.summary = {
      name: L.name,
      sizes,
      states: L.states.map(tensor),
      params: L.params.map(tensor),
      lossViews: L.views.filter((v) => lossNames.has(v.name)).map(tensor),
      outputViews: L.views.filter((v) => !lossNames.has(v.name)).map(tensor),
      output: outputPort(sig).shape,
      lr: sig.lr,
      scale: sig.scale,
      K: sig.K,
      forms: compiled.chunk.forms.map((f) => ({
        state: f.state,
        form: f.form,
        why: f.why && { code: f.why.code, message: f.why.message, line: f.why.span.start.line },
      })),
    };
  }

  /** The per-token gradient program, as `tttc grad` prints it: each node ends in `# file:LINE`. */
  gradient(): GeneratedCode {
    const text = printProgram(gradientProgram(this.compiled.layer), `grad_${this.compiled.layer.name}`);
    const specLines = text.split('\n').map((line) => Number(/# .*:(\d+)$/.exec(line)?.[1] ?? 0));
    return { path: `grad_${this.compiled.layer.name}`, text, specLines };
  }

  /** The WGSL kernel `tttc compile --target wgsl` writes (WebGPU's default limits). */
  wgsl(): GeneratedCode {
    const text = renderWgsl(this.compiled).code;
    return { path: `${stem(this.compiled)}.wgsl`, text, specLines: specLinesOf(text) };
  }

  /** The CUDA files `tttc compile --target cuda` writes. */
  cuda(arch = 'sm_90'): GeneratedCode[] {
    return renderCuda(this.compiled, { arch, dtype: 'f32' }).files.map((f) => ({
      path: f.path,
      text: f.contents,
      specLines: specLinesOf(f.contents),
    }));
  }

  /** Gather named tensors (the `run` convention) into the inner loop's inputs; throws on bad shapes. */
  inputs(named: ReadonlyMap<string, Tensor>): InnerLoopInputs {
    return innerLoopInputs(this.compiled.signature, named);
  }

  /** The f64 reference executor over the whole sequence. */
  reference(inp: InnerLoopInputs): InnerLoopOutputs {
    return runReference(this.compiled.chunk, inp);
  }

  /**
   * The self-supervised loss of every token at the state before and after that token's update,
   * in f64, [B, H, T] each. The reference executor steps one token at a time; after token t at
   * mini-batch position i the state token t reads out with is θ_t = S − scale_i · A (S the
   * mini-batch's starting state, A its accumulator: semantics.md), and the state before token t is
   * θ_{t−1}. The loss is the spec's own, evaluated by the gradient program. Yields to the event
   * loop every few milliseconds, so a page stays responsive, and tells `progress` how far it got.
   */
  async lossTrace(
    inp: InnerLoopInputs,
    progress?: (tokens: number) => void,
  ): Promise<{ before: Float64Array; after: Float64Array }> {
    const L = this.compiled.layer;
    this.stepChunk ??= deriveChunkProgram(L, this.compiled.chunk.request, 1).chunk!;
    this.lossProgram ??= gradientProgram(L);
    const { B, H, T } = inp;
    const K = this.compiled.chunk.K;
    const scaleAt = (position: number) => {
      const s = L.update.scale;
      return s.kind === 'position' ? inp.scale!.data[position] : s.kind === 'constant' ? s.value : 1;
    };
    const before = new Float64Array(B * H * T);
    const after = new Float64Array(B * H * T);
    const lossViews = L.loss.views.map((v) => v.name);
    let states = inp.states;
    let accums = inp.accums;
    // θ before the first token: the starting state less its carried accumulator.
    let theta = effectiveStates(states, accums, inp.start > 0 ? scaleAt(inp.start - 1) : 0);
    let paused = performance.now();
    for (let t = 0; t < T; t++) {
      if (performance.now() - paused > 30) {
        progress?.(t);
        await new Promise((resolve) => setTimeout(resolve, 0));
        paused = performance.now();
      }
      const position = (inp.start + t) % K;
      const token = sliceToken(inp, t);
      for (let bh = 0; bh < B * H; bh++) before[bh * T + t] = this.loss(theta, token, inp, bh, lossViews);
      const stepped = runReference(this.stepChunk, { ...token, start: position, states, accums });
      states = stepped.states;
      accums = stepped.accums;
      theta = effectiveStates(states, accums, scaleAt(position));
      for (let bh = 0; bh < B * H; bh++) after[bh * T + t] = this.loss(theta, token, inp, bh, lossViews);
    }
    return { before, after };
  }

  /** The loss of one token of sequence-head `bh` at states θ ([B, H, ...] each). */
  private loss(
    theta: ReadonlyMap<string, Tensor>,
    token: InnerLoopInputs,
    inp: InnerLoopInputs,
    bh: number,
    views: readonly string[],
  ): number {
    const named = new Map<string, Tensor>();
    for (const [name, t] of theta) named.set(`state.${name}`, block(t, bh, 2));
    for (const name of views) {
      const t = token.views.get(name)!;
      named.set(`view.${name}`, { shape: [1, ...t.shape.slice(3)], data: block(t, bh, 2).data });
    }
    for (const [name, t] of inp.params) named.set(`param.${name}`, block(t, bh % inp.H, 1));
    return execute(this.lossProgram!, named).get('loss')!.data[0];
  }

  /** Build the WGSL kernels for the browser's adapter (rendered for its limits). */
  async webgpu(): Promise<WebGPURunner> {
    const ctx = await getGPUDevice();
    return new WebGPURunner(await webgpuInnerLoop(this.compiled, ctx));
  }
}

/** The `index`-th block of a tensor whose first `lead` axes index blocks. */
function block(t: Tensor, index: number, lead: number): Tensor {
  const shape = t.shape.slice(lead);
  const n = size(shape);
  return { shape, data: t.data.subarray(index * n, (index + 1) * n) };
}

/** θ = S − scale · A for every state. */
function effectiveStates(
  states: ReadonlyMap<string, Tensor>,
  accums: ReadonlyMap<string, Tensor>,
  scale: number,
): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, s] of states) {
    const a = accums.get(name)!.data;
    out.set(name, { shape: s.shape, data: s.data.map((x, i) => x - scale * a[i]) });
  }
  return out;
}

/** Token t of every per-token tensor, as inputs of a one-token call (states left as they are). */
function sliceToken(inp: InnerLoopInputs, t: number): InnerLoopInputs {
  const { B, H, T } = inp;
  const one = (x: Tensor): Tensor => {
    const [, , , ...rest] = x.shape;
    const w = size(rest);
    const data = new Float64Array(B * H * w);
    for (let bh = 0; bh < B * H; bh++) data.set(x.data.subarray((bh * T + t) * w, (bh * T + t + 1) * w), bh * w);
    return { shape: [B, H, 1, ...rest], data };
  };
  return {
    ...inp,
    T: 1,
    views: new Map([...inp.views].map(([name, x]) => [name, one(x)])),
    lr: inp.lr && one(inp.lr),
  };
}

export interface WebGPURun {
  output: Tensor;
  /** Wall time of the whole-sequence call (upload, dispatch, read back), ms. */
  sequenceMs: number;
  /** Wall time of each one-token call of the same sequence, state carried, ms. */
  tokenMs: Float64Array;
  /** The output of the one-token calls, [B, H, T, ...]. */
  stepOutput: Tensor;
}

export class WebGPURunner {
  constructor(private readonly loop: WebGPUInnerLoop) {}

  get adapterName(): string {
    return this.loop.ctx.adapterName;
  }

  /** The browser's messages about the generated WGSL (expected to be none). */
  get warnings(): string[] {
    return this.loop.warnings;
  }

  /** The whole sequence in one call, then token by token (the one-row kernel), timing each call. */
  async run(inp: InnerLoopInputs): Promise<WebGPURun> {
    let start = performance.now();
    const whole = await this.loop.run(inp, { poison: true });
    const sequenceMs = performance.now() - start;
    const { B, H, T } = inp;
    const K = this.loop.manifest.signature.K;
    const width = size(outputPort(this.loop.manifest.signature).shape);
    const stepOutput = { shape: whole.output.shape, data: new Float64Array(whole.output.data.length) };
    const tokenMs = new Float64Array(T);
    let { states, accums } = inp;
    for (let t = 0; t < T; t++) {
      const token = { ...sliceToken(inp, t), start: (inp.start + t) % K, states, accums };
      start = performance.now();
      const out = await this.loop.run(token, { poison: true });
      tokenMs[t] = performance.now() - start;
      ({ states, accums } = out);
      for (let bh = 0; bh < B * H; bh++)
        stepOutput.data.set(out.output.data.subarray(bh * width, (bh + 1) * width), (bh * T + t) * width);
    }
    return { output: whole.output, sequenceMs, tokenMs, stepOutput };
  }
}

/** Why this browser cannot run WebGPU kernels, or undefined when it can. */
export async function webgpuUnavailable(): Promise<string | undefined> {
  if (!('gpu' in navigator) || !navigator.gpu)
    return `This browser has no WebGPU (navigator.gpu is missing${isSecureContext ? '' : '; the page is not a secure context: serve it from https or localhost'}). Everything but Run works; try a recent Chrome, Edge or Safari, or Firefox with WebGPU enabled.`;
  try {
    await getGPUDevice();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** The built-in functions' names, for highlighting. */
export const builtinNames: readonly string[] = [...BUILTINS.keys()];

export { KEYWORDS as keywords } from '../../compiler/syntax/lexer.ts';
