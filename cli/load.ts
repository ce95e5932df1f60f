/** Reading and compiling the spec a command names, with diagnostics printed on failure. */
import { readFileSync } from 'node:fs';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import type { FormRequest } from '../compiler/dualform/forms.ts';
import { type Compiled, compileSpec } from '../compiler/pipeline.ts';
import { UsageError } from './args.ts';
import type { CliIO } from './io.ts';

export function loadSpec(
  file: string | undefined,
  defines: ReadonlyMap<string, number>,
  form: string | undefined,
  io: CliIO,
): Compiled | undefined {
  if (!file) throw new UsageError('missing the spec file');
  if (form !== undefined && !['auto', 'dual', 'primal'].includes(form))
    throw new UsageError(`--form must be auto, dual or primal, got '${form}'`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const result = compileSpec(text, { file, overrides: defines, form: (form ?? 'auto') as FormRequest });
  if (result.diagnostics.length) io.err(formatDiagnostics(result.diagnostics, text));
  if (!result.ok) {
    const n = result.diagnostics.length;
    io.err(`${n} error${n === 1 ? '' : 's'}`);
    return undefined;
  }
  return result.compiled;
}
