/** Compiling example specs in tests, failing loudly with formatted diagnostics. */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { formatDiagnostics } from '../../compiler/diagnostics/diagnostic.ts';
import type { FormRequest } from '../../compiler/dualform/forms.ts';
import { type Compiled, compileSpec } from '../../compiler/pipeline.ts';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const referenceDir = resolve(repoRoot, 'tests/fixtures/ttt-reference');
export const exampleFiles = readdirSync(join(repoRoot, 'examples'))
  .filter((f) => f.endsWith('.ttt'))
  .sort();

export function compileExample(
  name: string,
  form: FormRequest = 'auto',
  overrides: Record<string, number> = {},
  rows?: number,
): Compiled {
  const file = join(repoRoot, 'examples', name);
  const text = readFileSync(file, 'utf8');
  const result = compileSpec(text, { file, form, overrides: new Map(Object.entries(overrides)), rows });
  if (!result.ok) throw new Error(formatDiagnostics(result.diagnostics, text));
  return result.compiled;
}
