/** `.ttt` text -> AST and syntax diagnostics. Never throws: every problem becomes a diagnostic. */
import { EOF, type ILexingError, type IRecognitionException, type IToken } from 'chevrotain';
import { diag } from '../diagnostics/codes.ts';
import type { Diagnostic } from '../diagnostics/diagnostic.ts';
import type { LayerDecl, SourceFile } from './ast.ts';
import { LBracket, LParen, Minus, RBracket, RParen, tttLexer } from './lexer.ts';
import { tttParser } from './parser.ts';
import { SpanMaker, toAst } from './to-ast.ts';

/** Nesting the recursive-descent parser may enter; deeper input is refused before parsing. */
const MAX_NESTING = 64;

export function parse(text: string, file: string): { source: SourceFile; diagnostics: Diagnostic[] } {
  const spans = new SpanMaker(file, text);
  const lexed = tttLexer.tokenize(text);
  const diagnostics = lexed.errors.map((e) => lexError(e, text, spans));
  const layer = parseTokens(lexed.tokens, spans, text.length, diagnostics);
  diagnostics.sort((a, b) => a.span.start.offset - b.span.start.offset);
  return { source: { file, text, layer }, diagnostics };
}

function parseTokens(
  tokens: IToken[],
  spans: SpanMaker,
  textLength: number,
  diagnostics: Diagnostic[],
): LayerDecl | undefined {
  const tooDeep = firstTooDeep(tokens);
  if (tooDeep) {
    diagnostics.push(
      diag('TTT106', spans.token(tooDeep), `brackets or minus signs nested more than ${MAX_NESTING} deep`),
    );
    return undefined;
  }
  const parser = tttParser();
  parser.input = tokens;
  const cst = parser.file();
  diagnostics.push(...parser.errors.map((e) => parseError(e, spans, textLength)));
  const ast = toAst(cst, spans, parser.errors.length > 0);
  diagnostics.push(...ast.diagnostics);
  return ast.layer;
}

function lexError(e: ILexingError, text: string, spans: SpanMaker): Diagnostic {
  const chars = text.slice(e.offset, e.offset + e.length);
  return diag(
    'TTT101',
    spans.range(e.offset, e.offset + e.length),
    `unexpected character${chars.length > 1 ? 's' : ''} '${chars}'`,
  );
}

function parseError(e: IRecognitionException, spans: SpanMaker, textLength: number): Diagnostic {
  if (e.name === 'NotAllInputParsedException') return diag('TTT104', spans.token(e.token), e.message);
  if (e.token.tokenType !== EOF) return diag('TTT102', spans.token(e.token), e.message);
  // At the end of the file, point just after the last real token rather than at a blank line.
  const previous = (e as { previousToken?: IToken }).previousToken;
  const at =
    previous && Number.isFinite(previous.startOffset) ? previous.startOffset + previous.image.length : textLength;
  return diag('TTT103', spans.range(at, at), e.message);
}

/** The first token that opens a bracket, or continues a run of `-`, beyond MAX_NESTING. */
function firstTooDeep(tokens: IToken[]): IToken | undefined {
  let depth = 0;
  let minusRun = 0;
  for (const token of tokens) {
    if (token.tokenType === LParen || token.tokenType === LBracket) depth++;
    else if (token.tokenType === RParen || token.tokenType === RBracket) depth = Math.max(0, depth - 1);
    minusRun = token.tokenType === Minus ? minusRun + 1 : 0;
    if (depth > MAX_NESTING || minusRun > MAX_NESTING) return token;
  }
  return undefined;
}
