/**
 * Text from a spec (comments, source lines, file and layer names) on its way into generated code.
 * Every renderer passes such text through here, so nothing a spec says can end a comment, splice a
 * line, open a string or disguise the code around it.
 */

/**
 * Code points that end or splice a line in C, CUDA, WGSL, TypeScript or Python (the C0 and C1
 * controls, DEL, U+2028/2029), and the invisible ones that reorder how code is displayed (bidi
 * controls) or hide (BOM).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

const visible = (c: string) => `\\u{${c.codePointAt(0)!.toString(16)}}`;

/**
 * One line of text safe inside a comment of any target language: a `//` or `#` line comment, a
 * `/* ... *\/` block comment (WGSL's nest, so `/*` is broken up too) or a JSDoc line.
 */
export function commentText(text: string): string {
  const escaped = text
    .replace(UNSAFE, visible)
    .replace(/\*\//g, '* /')
    .replace(/\/\*/g, '/ *')
    .replace(/"""/g, '"\\""');
  // A trailing backslash (even before spaces) would splice the next line into a C or CUDA comment.
  const trimmed = escaped.trimEnd();
  return trimmed.endsWith('\\') ? `${trimmed}.` : trimmed;
}

/**
 * Text safe inside a double-quoted string or docstring of Python or a double-quoted string of
 * C, CUDA or TypeScript: backslashes and quotes escaped, unsafe code points written out as
 * visible `\u{...}` (with the backslash escaped, so no language reads them as an escape).
 */
export function stringText(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(UNSAFE, (c) => `\\${visible(c)}`);
}

/** Any text as a TypeScript template literal, kept exactly (backticks, backslashes and `${` escaped). */
export function templateLiteral(text: string): string {
  return '`' + text.replace(/[`\\]|\$\{/g, (m) => `\\${m}`) + '`';
}
