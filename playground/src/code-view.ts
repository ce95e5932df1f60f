/**
 * Read-only views of generated code (WGSL, CUDA, C, Python, the IR), highlighted, with a gutter
 * that shows the spec line each generated line comes from; hovering a line marks that spec line.
 */
import { StreamLanguage } from '@codemirror/language';
import { clike, cpp } from '@codemirror/legacy-modes/mode/clike';
import { python } from '@codemirror/legacy-modes/mode/python';
import { EditorState, type Extension, RangeSet } from '@codemirror/state';
import { EditorView, gutter, GutterMarker, lineNumbers } from '@codemirror/view';
import { highlight } from './editor.ts';

const words = (s: string) => Object.fromEntries(s.split(' ').map((w) => [w, true]));

const wgsl = clike({
  name: 'wgsl',
  keywords: words(
    'fn let var const struct return if else for while loop break continue switch case default select storage read read_write uniform workgroup private function',
  ),
  types: words('f32 f16 i32 u32 bool vec2 vec3 vec4 mat2x2 mat3x3 mat4x4 array atomic'),
  builtin: words('sqrt inverseSqrt exp log tanh max min abs clamp select workgroupBarrier storageBarrier bitcast'),
  atoms: words('true false'),
  hooks: { '@': (stream: { eatWhile(r: RegExp): boolean }) => (stream.eatWhile(/[\w]/), 'meta') },
});

export type CodeLanguage = 'wgsl' | 'cuda' | 'python' | 'plain';

const languages: Record<CodeLanguage, Extension> = {
  wgsl: StreamLanguage.define(wgsl),
  cuda: StreamLanguage.define(cpp),
  python: StreamLanguage.define(python),
  plain: [],
};

class SpecLineMarker extends GutterMarker {
  constructor(readonly line: number) {
    super();
  }
  override eq(other: SpecLineMarker) {
    return other.line === this.line;
  }
  override toDOM() {
    const el = document.createElement('span');
    el.textContent = `spec ${this.line}`;
    el.title = `from line ${this.line} of the spec`;
    return el;
  }
}

export function languageOf(path: string): CodeLanguage {
  if (path.endsWith('.wgsl')) return 'wgsl';
  if (/\.(cu|h|cpp)$/.test(path)) return 'cuda';
  if (path.endsWith('.py')) return 'python';
  return 'plain';
}

export class CodeView {
  readonly view: EditorView;

  /** `onSpecLine` gets the spec line of the generated line under the mouse (0 when none). */
  constructor(parent: HTMLElement, onSpecLine: (line: number) => void) {
    this.view = new EditorView({ parent, state: this.state('', [], 'plain') });
    this.view.dom.addEventListener('mousemove', (e) => {
      const pos = this.view.posAtCoords({ x: e.clientX, y: e.clientY });
      const line = pos === null ? 0 : (this.specLines[this.view.state.doc.lineAt(pos).number - 1] ?? 0);
      if (line !== this.hovered) onSpecLine((this.hovered = line));
    });
    this.view.dom.addEventListener('mouseleave', () => onSpecLine((this.hovered = 0)));
  }

  private specLines: readonly number[] = [];
  private hovered = 0;

  show(text: string, specLines: readonly number[], language: CodeLanguage): void {
    this.specLines = specLines;
    this.view.setState(this.state(text, specLines, language));
  }

  private state(text: string, specLines: readonly number[], language: CodeLanguage): EditorState {
    const doc = EditorState.create({ doc: text }).doc;
    // A marker where a line's spec line differs from the line above, so each stage is labelled once.
    const markers = RangeSet.of(
      specLines.flatMap((line, i) =>
        line && line !== specLines[i - 1] && i < doc.lines
          ? [new SpecLineMarker(line).range(doc.line(i + 1).from)]
          : [],
      ),
    );
    return EditorState.create({
      doc: text,
      extensions: [
        EditorState.readOnly.of(true),
        EditorView.editable.of(false),
        lineNumbers(),
        gutter({ class: 'spec-lines', markers: () => markers }),
        languages[language],
        highlight,
      ],
    });
  }
}
