/**
 * The compiler front to back, as one call: text → checked layer → its kernel signature and the
 * mini-batch program of every variant, each derived once for every target to schedule and print.
 */
import type { KernelSignature } from '../core/signature.ts';
import { check } from './check/check.ts';
import type { CheckedLayer, DimOverrides } from './check/checked.ts';
import { diag } from './diagnostics/codes.ts';
import type { Diagnostic } from './diagnostics/diagnostic.ts';
import { type ChunkProgram, deriveChunkProgram } from './dualform/derive.ts';
import type { FormRequest } from './dualform/forms.ts';
import { programLimits } from './ir/limits.ts';
import { kernelSignature } from './signature.ts';
import { parse } from './syntax/parse.ts';

export interface CompileOptions {
  file: string;
  overrides?: DimOverrides;
  form?: FormRequest;
  /** Tokens per chunk of the mini-batch program (default: the mini-batch size; 1 for decode). */
  rows?: number;
}

/**
 * A kernel variant: `prefill` walks any number of tokens with chunks of `rows` (the mini-batch
 * size unless asked otherwise); `decode` is the same kernel with one-row chunks, for calls of one
 * token, except under read order `after`, where a token reads the end of its mini-batch. A
 * backward variant will join them. Every variant has the compilation's signature.
 */
export type VariantName = 'prefill' | 'decode';

export interface Variant {
  name: VariantName;
  chunk: ChunkProgram;
}

export interface Compiled {
  /** The spec's path and text, for annotating generated code with the lines it comes from. */
  file: string;
  text: string;
  layer: CheckedLayer;
  signature: KernelSignature;
  /** The prefill variant's program. */
  chunk: ChunkProgram;
  /** Prefill first; decode when prefill's chunks have more than one row and tokens are read one by one. */
  variants: readonly Variant[];
}

export const variantOf = (c: Compiled, name: VariantName): Variant | undefined =>
  c.variants.find((v) => v.name === name);

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
    const request = options.form ?? 'auto';
    const derived = deriveChunkProgram(layer, request, rows);
    if (!derived.chunk) return { ok: false, diagnostics: derived.diagnostics };
    const limits = programLimits(derived.chunk.program, layer.ast.nameSpan);
    if (limits.length) return { ok: false, diagnostics: limits };
    const chunk = derived.chunk;
    const variants: Variant[] = [{ name: 'prefill', chunk }];
    // Under read order 'after' a token reads the end of its mini-batch, so no call decodes one token.
    if (rows > 1 && layer.update.rules.read !== 'after')
      variants.push({ name: 'decode', chunk: deriveChunkProgram(layer, request, 1).chunk! });
    return {
      ok: true,
      compiled: { file: options.file, text, layer, signature: kernelSignature(layer, chunk), chunk, variants },
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
