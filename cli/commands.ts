/** The `tttc` commands other than `run` and `layer`: check, grad, compile. */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gradientProgram } from '../compiler/autodiff/gradient-program.ts';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { printProgram } from '../compiler/ir/print.ts';
import { kernelRuleRefusal, ruleFeatures } from '../compiler/schedule/rule-support.ts';
import { TARGETS } from '../targets/index.ts';
import type { GeneratedFile, TargetOptions } from '../targets/target.ts';
import { type ParsedArgs, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';

const shape = (s: readonly number[]) => `[${s.join(', ')}]`;

export function checkCommand(a: ParsedArgs, io: CliIO): number {
  const c = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!c) return 1;
  const L = c.layer;
  const lines = [
    `${L.name}: ok`,
    `  dims:      ${[...L.dims].map(([n, v]) => `${n} = ${v}`).join(', ')}; minibatch ${L.minibatch.name} = ${L.minibatch.size}`,
    `  state:     ${L.states.map((s) => `${s.name} ${shape(s.shape)}`).join(', ')}`,
    `  params:    ${L.params.map((p) => `${p.name} ${shape(p.shape)}`).join(', ') || '(none)'}`,
    `  views:     ${L.views.map((v) => `${v.name} ${shape(v.shape)}`).join(', ')}`,
    L.update.rules.plain
      ? `  update:    sgd, lr ${L.update.lr.kind === 'token' ? 'per token' : L.update.lr.value}, scale ${L.update.scale.kind === 'constant' ? L.update.scale.value : L.update.scale.kind}`
      : `  update:    sgd, ${[...L.update.rules.rates].map(([s, r]) => `${s} at ${r.spec.kind === 'token' ? r.input : r.spec.value}`).join(', ')}; ${ruleFeatures(L.update.rules).join(', ')}`,
    `  form:`,
    ...c.chunk.forms.map(
      (f) =>
        `    ${f.state.padEnd(8)} ${f.form}${f.why ? `  (${f.why.message}, at line ${f.why.span.start.line})` : ''}`,
    ),
  ];
  io.out(lines.join('\n'));
  return 0;
}

export function gradCommand(a: ParsedArgs, io: CliIO): number {
  const c = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!c) return 1;
  io.out(printProgram(gradientProgram(c.layer), `grad_${c.layer.name}`));
  return 0;
}

/** Write every file or none: stage them all beside their targets, then rename into place. */
function writeAll(dir: string, files: GeneratedFile[]): void {
  const staged: [string, string][] = [];
  try {
    for (const f of files) {
      const path = join(dir, f.path);
      mkdirSync(dirname(path), { recursive: true });
      const temporary = `${path}.${process.pid}.tmp`;
      writeFileSync(temporary, f.contents);
      staged.push([temporary, path]);
    }
  } catch (e) {
    for (const [t] of staged) rmSync(t, { force: true });
    throw e;
  }
  for (const [t, p] of staged) renameSync(t, p);
}

export async function compileCommand(a: ParsedArgs, io: CliIO): Promise<number> {
  const targetNames = (a.options.get('target') ?? 'ir')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of targetNames)
    if (!TARGETS.has(t)) throw new UsageError(`unknown target '${t}'; targets: ${[...TARGETS.keys()].join(', ')}`);
  const dtype = a.options.get('dtype') ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new UsageError(`--dtype must be f32 or bf16, got '${dtype}'`);
  const arch = a.options.get('arch') ?? 'sm_90';
  if (!/^sm_\d+a?$/.test(arch)) throw new UsageError(`--arch must look like sm_80 or sm_90, got '${arch}'`);
  const c = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!c) return 1;
  const refusals = targetNames.flatMap((t) => (t === 'ir' ? [] : (kernelRuleRefusal(c.layer, t) ?? [])));
  if (refusals.length) {
    io.err(formatDiagnostics(refusals, c.text));
    return 1;
  }
  const options: TargetOptions = { arch, dtype };
  const files: GeneratedFile[] = [];
  for (const t of targetNames) files.push(...(await TARGETS.get(t)!.emit(c, options)));
  const dir = a.options.get('out') ?? 'build';
  writeAll(dir, files);
  for (const f of files) io.out(`wrote ${join(dir, f.path)}`);
  return 0;
}
