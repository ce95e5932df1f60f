/** The `tttc` commands that only compile: check, grad, compile (over the compiler API in api/). */
import { readFileSync } from 'node:fs';
import { check, compile, type CompileOptions, type Diagnostic, type LayerSummary } from '../api/index.ts';
import type { FormRequest } from '../compiler/dualform/forms.ts';
import { gradientProgram } from '../compiler/autodiff/gradient-program.ts';
import { printProgram } from '../compiler/ir/print.ts';
import { type Diagnostic as SpanDiagnostic, formatDiagnostic } from '../compiler/diagnostics/diagnostic.ts';
import { type ParsedArgs, threadsOption, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';
import { writeAllOrNone } from './write.ts';
import { cudaReport, formatCudaReport } from './cuda-report.ts';
import { DEFAULT_ARCH } from '../api/options.ts';

const shape = (s: readonly number[]) => `[${s.join(', ')}]`;

function readSpec(file: string | undefined): { file: string; text: string } {
  if (!file) throw new UsageError('missing the spec file');
  try {
    return { file, text: readFileSync(file, 'utf8') };
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

function specOptions(a: ParsedArgs, file: string): CompileOptions {
  return { file, defines: a.defines, form: a.options.get('form') as FormRequest | undefined };
}

/** The API's diagnostic back in the compiler's own form, which formatDiagnostic prints. */
function withSpan(d: Diagnostic): SpanDiagnostic {
  const at = (p: Diagnostic['span']['start']) => ({ offset: p.offset, line: p.line, col: p.column });
  return { ...d, span: { file: d.file, start: at(d.span.start), end: at(d.span.end) } };
}

/** Diagnostics as `tttc` prints them, then `N errors` when there are errors. */
function reportDiagnostics(diagnostics: readonly Diagnostic[], text: string, io: CliIO): void {
  if (diagnostics.length === 0) return;
  io.err(diagnostics.map((d) => formatDiagnostic(withSpan(d), text)).join('\n\n'));
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  if (errors) io.err(`${errors} error${errors === 1 ? '' : 's'}`);
}

export function summaryLines(L: LayerSummary): string[] {
  const named = (xs: LayerSummary['states']) => xs.map((x) => `${x.name} ${shape(x.shape)}`).join(', ');
  return [
    `${L.name}: ok`,
    `  dims:      ${Object.entries(L.dims)
      .map(([n, v]) => `${n} = ${v}`)
      .join(', ')}; minibatch ${L.minibatch.name} = ${L.minibatch.size}`,
    `  state:     ${named(L.states)}`,
    `  params:    ${named(L.params) || '(none)'}`,
    `  views:     ${named(L.views)}`,
    L.update.features.length === 0
      ? `  update:    ${L.update.rule}, lr ${L.update.lr === 'token' ? 'per token' : L.update.lr}, scale ${L.update.scale}`
      : `  update:    ${L.update.rule}, ${Object.entries(L.update.rates)
          .map(([s, r]) => `${s} at ${r}`)
          .join(', ')}; ${L.update.features.join(', ')}`,
    `  form:`,
    ...L.forms.map(
      (f) => `    ${f.state.padEnd(8)} ${f.form}${f.why ? `  (${f.why.message}, at line ${f.why.line})` : ''}`,
    ),
  ];
}

export function checkCommand(a: ParsedArgs, io: CliIO): number {
  const { file, text } = readSpec(a.positional[0]);
  const result = check(text, specOptions(a, file));
  if (a.flags.has('json')) io.out(JSON.stringify(result, null, 2));
  else {
    reportDiagnostics(result.diagnostics, text, io);
    if (result.layer) io.out(summaryLines(result.layer).join('\n'));
  }
  return result.ok ? 0 : 1;
}

export function gradCommand(a: ParsedArgs, io: CliIO): number {
  const c = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!c) return 1;
  io.out(printProgram(gradientProgram(c.layer), `grad_${c.layer.name}`));
  return 0;
}

export async function compileCommand(a: ParsedArgs, io: CliIO): Promise<number> {
  const targets = (a.options.get('target') ?? 'ir').split(',').map((t) => t.trim());
  if (targets.some((t) => t === '')) throw new UsageError(`--target has an empty entry: '${a.options.get('target')}'`);
  const report = a.flags.has('report');
  if (report && !targets.includes('cuda'))
    throw new UsageError('--report reads back the CUDA kernels: add cuda to --target');
  const { file, text } = readSpec(a.positional[0]);
  const result = await compile(text, {
    ...specOptions(a, file),
    targets,
    arch: a.options.get('arch'),
    dtype: a.options.get('dtype') as CompileOptions['dtype'],
    io: a.options.get('io') as CompileOptions['io'],
    threads: threadsOption(a),
  });
  const dir = a.options.get('out') ?? 'build';
  const written = result.ok ? await writeAllOrNone(dir, result.files, [file]) : [];
  const arch = a.options.get('arch') ?? DEFAULT_ARCH;
  const kernels = report && result.ok ? await cudaReport(result.files, arch) : undefined;
  if (a.flags.has('json'))
    io.out(JSON.stringify({ ok: result.ok, diagnostics: result.diagnostics, written, report: kernels }, null, 2));
  else {
    reportDiagnostics(result.diagnostics, text, io);
    for (const path of written) io.out(`wrote ${path}`);
    if (kernels) io.out(formatCudaReport(kernels).join('\n'));
  }
  return result.ok ? 0 : 1;
}
