/** The compiler front to back, as one call: text → checked layer → derived mini-batch program. */
import { check } from './check/check.ts';
import type { CheckedLayer, DimOverrides } from './check/checked.ts';
import { diag } from './diagnostics/codes.ts';
import type { Diagnostic } from './diagnostics/diagnostic.ts';
import { type ChunkProgram, deriveChunkProgram } from './dualform/derive.ts';
import type { FormRequest } from './dualform/forms.ts';
import { programLimits } from './ir/limits.ts';
import { parse } from './syntax/parse.ts';

export interface CompileOptions {
  file: string;
  overrides?: DimOverrides;
  form?: FormRequest;
  /** Tokens per chunk of the mini-batch program (default: the mini-batch size; 1 for decode). */
  rows?: number;
}

export interface Compiled {
  /** The spec's path and text, for annotating generated code with the lines it comes from. */
  file: string;
  text: string;
  layer: CheckedLayer;
  chunk: ChunkProgram;
}

export type CompileResult =
  { ok: true; compiled: Compiled; diagnostics: Diagnostic[] } | { ok: false; diagnostics: Diagnostic[] };

export function compileSpec(text: string, options: CompileOptions): CompileResult {
  const parsed = parse(text, options.file);
  if (parsed.diagnostics.length) return { ok: false, diagnostics: parsed.diagnostics };
  const checked = check(parsed.source, options.overrides);
  if (!checked.layer || checked.diagnostics.some((d) => d.severity === 'error'))
    return { ok: false, diagnostics: checked.diagnostics };
  const layer = checked.layer;
  const rows = options.rows ?? layer.minibatch.size;
  if (!Number.isInteger(rows) || rows < 1 || rows > layer.minibatch.size) {
    return {
      ok: false,
      diagnostics: [
        diag(
          'TTT501',
          layer.ast.nameSpan,
          `rows per chunk must be a whole number in [1, ${layer.minibatch.size}], got ${rows}`,
        ),
      ],
    };
  }
  try {
    const derived = deriveChunkProgram(layer, options.form ?? 'auto', rows);
    if (!derived.chunk) return { ok: false, diagnostics: derived.diagnostics };
    const limits = programLimits(derived.chunk.program, layer.ast.nameSpan);
    if (limits.length) return { ok: false, diagnostics: limits };
    return {
      ok: true,
      compiled: { file: options.file, text, layer, chunk: derived.chunk },
      diagnostics: checked.diagnostics,
    };
  } catch (e) {
    // A checked layer should always lower; if it does not, say so as a diagnostic, not a crash.
    const message = e instanceof Error ? e.message : String(e);
    return {
      ok: false,
      diagnostics: [
        diag('TTT901', layer.ast.nameSpan, `internal compiler error while deriving the mini-batch program: ${message}`),
      ],
    };
  }
}
