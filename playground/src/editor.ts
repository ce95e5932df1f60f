/** The `.ttt` editor: CodeMirror 6 with the language's highlighting and the compiler's diagnostics as squiggles. */
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { HighlightStyle, StreamLanguage, syntaxHighlighting, type StreamParser } from '@codemirror/language';
import { lintGutter, setDiagnostics } from '@codemirror/lint';
import { EditorState, type Extension, StateEffect, StateField } from '@codemirror/state';
import {
  Decoration,
  type DecorationSet,
  drawSelection,
  EditorView,
  highlightActiveLine,
  keymap,
  lineNumbers,
} from '@codemirror/view';
import { tags } from '@lezer/highlight';
import { builtinNames, keywords, type PlaygroundDiagnostic } from './tttc.ts';

const KEYWORDS = new Set(keywords);
const BUILTINS = new Set(builtinNames);

const tttParser: StreamParser<null> = {
  name: 'ttt',
  token(stream) {
    if (stream.eatSpace()) return null;
    if (stream.match('#')) {
      stream.skipToEnd();
      return 'comment';
    }
    if (stream.match(/^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/)) return 'number';
    const word = stream.match(/^[A-Za-z_][A-Za-z0-9_]*/) as RegExpMatchArray | null;
    if (word) {
      if (KEYWORDS.has(word[0])) return 'keyword';
      if (BUILTINS.has(word[0])) return 'builtin';
      return stream.match(/^\s*\(/, false) ? 'variableName.function' : 'variableName';
    }
    if (stream.match(/^[@+\-*/=]|^->/)) return 'operator';
    stream.next();
    return null;
  },
  startState: () => null,
  languageData: { commentTokens: { line: '#' } },
};

export const tttLanguage = StreamLanguage.define(tttParser);

export const highlight = syntaxHighlighting(
  HighlightStyle.define([
    { tag: tags.keyword, color: '#7c3aed', fontWeight: '600' },
    { tag: tags.comment, color: '#6b7280', fontStyle: 'italic' },
    { tag: tags.number, color: '#b45309' },
    { tag: tags.standard(tags.variableName), color: '#0369a1' },
    { tag: tags.function(tags.variableName), color: '#0e7490' },
    { tag: tags.atom, color: '#b45309' },
    { tag: tags.operator, color: '#be123c' },
    { tag: tags.typeName, color: '#047857' },
    { tag: tags.string, color: '#047857' },
    { tag: tags.meta, color: '#6b7280' },
  ]),
);

const markLineEffect = StateEffect.define<number>();
const sourceLine = Decoration.line({ class: 'spec-source-line' });

/** The spec line marked as the source of the generated line under the mouse. */
const markedLine = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    for (const e of tr.effects)
      if (e.is(markLineEffect))
        return e.value >= 1 && e.value <= tr.state.doc.lines
          ? Decoration.set([sourceLine.range(tr.state.doc.line(e.value).from)])
          : Decoration.none;
    return marks.map(tr.changes);
  },
  provide: (f) => EditorView.decorations.from(f),
});

export interface SpecEditor {
  view: EditorView;
  text(): string;
  setText(text: string): void;
  /** Show these diagnostics (from the compiler) as squiggles. */
  setDiagnostics(diagnostics: readonly PlaygroundDiagnostic[]): void;
  /** Mark one spec line, e.g. the source of a generated line under the mouse (0: none). */
  markLine(line: number): void;
}

export function createSpecEditor(parent: HTMLElement, text: string, onChange: (text: string) => void): SpecEditor {
  const extensions: Extension[] = [
    lineNumbers(),
    history(),
    drawSelection(),
    highlightActiveLine(),
    keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
    tttLanguage,
    highlight,
    lintGutter(),
    markedLine,
    EditorView.updateListener.of((u) => u.docChanged && onChange(u.state.doc.toString())),
    EditorView.lineWrapping,
  ];
  const view = new EditorView({ parent, state: EditorState.create({ doc: text, extensions }) });
  return {
    view,
    text: () => view.state.doc.toString(),
    setText: (t) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: t } }),
    setDiagnostics(diagnostics) {
      const length = view.state.doc.length;
      const marks = diagnostics.map((d) => {
        const from = Math.min(d.from, length);
        return {
          from,
          to: Math.min(Math.max(d.to, from), length),
          severity: d.severity,
          source: d.code,
          message: `${d.message}\nhint: ${d.hint}`,
        };
      });
      view.dispatch(setDiagnostics(view.state, marks));
    },
    markLine(line) {
      view.dispatch({ effects: markLineEffect.of(line) });
      if (line >= 1 && line <= view.state.doc.lines)
        view.dispatch({ effects: EditorView.scrollIntoView(view.state.doc.line(line).from, { y: 'nearest' }) });
    },
  };
}
