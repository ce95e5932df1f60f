/** One diagnostics type for every stage: a code, a span, a message and a hint. */

export interface Position {
  /** 0-based character offset. */
  offset: number;
  /** 1-based line. */
  line: number;
  /** 1-based column. */
  col: number;
}

export interface Span {
  file: string;
  start: Position;
  /** Exclusive end. */
  end: Position;
}

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  /** Stable code, e.g. `TTT101`; the catalogue is in `codes.ts` and `docs/language.md`. */
  code: string;
  severity: Severity;
  message: string;
  span: Span;
  hint: string;
}

/** Thrown by a stage that cannot go on; carries every diagnostic found so far. */
export class CompileError extends Error {
  constructor(readonly diagnostics: Diagnostic[]) {
    super(diagnostics.map((d) => `${d.code}: ${d.message}`).join('\n'));
    this.name = 'CompileError';
  }
}

export function spanUnion(a: Span, b: Span): Span {
  return {
    file: a.file,
    start: a.start.offset <= b.start.offset ? a.start : b.start,
    end: a.end.offset >= b.end.offset ? a.end : b.end,
  };
}

/** `file:line:col: error TTT101: message`, the source line, a marker under the span, and the hint. */
export function formatDiagnostic(d: Diagnostic, source: string): string {
  const lines = source.split('\n');
  const lineText = lines[d.span.start.line - 1] ?? '';
  const startCol = d.span.start.col;
  const endCol = d.span.end.line === d.span.start.line ? Math.max(d.span.end.col, startCol + 1) : lineText.length + 1;
  const gutter = String(d.span.start.line);
  const pad = ' '.repeat(gutter.length);
  const marker = ' '.repeat(Math.max(0, startCol - 1)) + '^'.repeat(Math.max(1, endCol - startCol));
  return [
    `${d.span.file}:${d.span.start.line}:${d.span.start.col}: ${d.severity} ${d.code}: ${d.message}`,
    `${pad} |`,
    `${gutter} | ${lineText}`,
    `${pad} | ${marker}`,
    `${pad} = hint: ${d.hint}`,
  ].join('\n');
}

export function formatDiagnostics(ds: readonly Diagnostic[], source: string): string {
  return ds.map((d) => formatDiagnostic(d, source)).join('\n\n');
}
