/**
 * The compiler API, the package's main entry (`import { compile, check } from 'tttc'`): a spec's
 * text in, structured diagnostics and generated files (or the checked summary) out. The CLI's
 * `check` and `compile` are thin layers over these two calls.
 */
import type { Diagnostic as InternalDiagnostic } from '../compiler/diagnostics/diagnostic.ts';
import { type Compiled, compileSpec } from '../compiler/pipeline.ts';
import { kernelRuleRefusal, ruleFeatures } from '../compiler/schedule/rule-support.ts';
import { loadTarget } from '../targets/index.ts';
import type { GeneratedFile } from '../targets/target.ts';
import { type CompileOptions, resolveOptions } from './options.ts';

export { type CompileOptions, OptionError } from './options.ts';
export { TARGET_NAMES } from '../targets/index.ts';
export type { GeneratedFile } from '../targets/target.ts';

export interface Location {
  /** 0-based character offset into the source. */
  offset: number;
  /** 1-based line and column. */
  line: number;
  column: number;
}

export interface Diagnostic {
  /** Stable code, e.g. `TTT101` (catalogue in docs/language.md). */
  code: string;
  severity: 'error' | 'warning';
  message: string;
  /** Where the span starts: the file name given in the options, and 1-based line and column. */
  file: string;
  line: number;
  column: number;
  /** The whole span; `end` is exclusive. */
  span: { start: Location; end: Location };
  hint: string;
}

export interface CompileOutput {
  /** True when there are no errors (warnings may remain). */
  ok: boolean;
  diagnostics: Diagnostic[];
  /** Generated files, paths relative to an output folder; empty when not ok. */
  files: GeneratedFile[];
}

export interface LayerSummary {
  name: string;
  dims: Record<string, number>;
  minibatch: { name: string; size: number };
  states: { name: string; shape: number[] }[];
  params: { name: string; shape: number[] }[];
  views: { name: string; shape: number[] }[];
  update: {
    rule: 'sgd';
    lr: number | 'token';
    scale: number | 'position' | 'none';
    /** Each state's rate: a constant, or the per-token input it reads (`lr`, or `lr.S` of its own). */
    rates: Record<string, number | string>;
    /** The rule's parts beyond plain sgd (decay, momentum, read order, commits...); empty for the paper's. */
    features: string[];
  };
  /** The form chosen for each state and, when it is primal, why a dual form was not possible. */
  forms: { state: string; form: string; why?: { code: string; message: string; line: number } }[];
}

export interface CheckOutput {
  ok: boolean;
  diagnostics: Diagnostic[];
  /** What `tttc check` prints, present when ok. */
  layer?: LayerSummary;
}

function toDiagnostic(d: InternalDiagnostic): Diagnostic {
  const at = (p: InternalDiagnostic['span']['start']): Location => ({ offset: p.offset, line: p.line, column: p.col });
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    file: d.span.file,
    line: d.span.start.line,
    column: d.span.start.col,
    span: { start: at(d.span.start), end: at(d.span.end) },
    hint: d.hint,
  };
}

function summarise(c: Compiled): LayerSummary {
  const L = c.layer;
  const named = (xs: readonly { name: string; shape: readonly number[] }[]) =>
    xs.map((x) => ({ name: x.name, shape: [...x.shape] }));
  const { lr, scale } = L.update;
  return {
    name: L.name,
    dims: Object.fromEntries(L.dims),
    minibatch: { name: L.minibatch.name, size: L.minibatch.size },
    states: named(L.states),
    params: named(L.params),
    views: named(L.views),
    update: {
      rule: L.update.rule,
      lr: lr.kind === 'token' ? 'token' : lr.value,
      scale: scale.kind === 'constant' ? scale.value : scale.kind,
      rates: Object.fromEntries(
        [...L.update.rules.rates].map(([state, r]) => [state, r.spec.kind === 'token' ? r.input : r.spec.value]),
      ),
      features: ruleFeatures(L.update.rules),
    },
    forms: c.chunk.forms.map((f) => ({
      state: f.state,
      form: f.form,
      ...(f.why && { why: { code: f.why.code, message: f.why.message, line: f.why.span.start.line } }),
    })),
  };
}

/** Checks a spec and summarises it, as `tttc check` does. Throws OptionError for bad options. */
export function check(
  source: string,
  options: Omit<CompileOptions, 'targets' | 'arch' | 'dtype' | 'io' | 'threads'> = {},
): CheckOutput {
  const o = resolveOptions(options);
  const result = compileSpec(source, { file: o.file, overrides: o.defines, form: o.form });
  const diagnostics = result.diagnostics.map(toDiagnostic);
  return result.ok ? { ok: true, diagnostics, layer: summarise(result.compiled) } : { ok: false, diagnostics };
}

/**
 * Compiles a spec for the given targets (default `['ir']`). Spec errors come back as diagnostics;
 * bad options (an unknown target, a malformed arch) throw OptionError.
 */
export async function compile(source: string, options: CompileOptions = {}): Promise<CompileOutput> {
  const o = resolveOptions(options);
  const targets = await Promise.all(o.targets.map(loadTarget));
  const result = compileSpec(source, { file: o.file, overrides: o.defines, form: o.form });
  const diagnostics = result.diagnostics.map(toDiagnostic);
  if (!result.ok) return { ok: false, diagnostics, files: [] };
  const refusals = o.targets.flatMap((t) =>
    t === 'ir' ? [] : result.compiled.variants.flatMap((v) => kernelRuleRefusal(v.chunk, t) ?? []),
  );
  if (refusals.length) return { ok: false, diagnostics: [...diagnostics, ...refusals.map(toDiagnostic)], files: [] };
  const files: GeneratedFile[] = [];
  const emit = { arch: o.arch, dtype: o.dtype, io: o.io, ...(o.threads && { threads: o.threads }) };
  for (const t of targets) files.push(...(await t.emit(result.compiled, emit)));
  return { ok: true, diagnostics, files };
}
