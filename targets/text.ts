/**
 * Text from a spec (comments, source lines, file and layer names) on its way into generated code.
 * Every renderer passes such text through here, so nothing a spec says can end a comment, splice a
 * line or open a string in the output.
 */

/** Code points that end or splice a line in C, CUDA, WGSL, TypeScript or Python, or end a comment. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** One line of text safe inside a line comment of any target language (`//` or `#`). */
export function commentText(text: string): string {
  const escaped = text
    .replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)
    .replace(/\*\//g, '* /')
    .replace(/"""/g, '"\\""');
  // A trailing backslash (even before spaces) would splice the next line into a C or CUDA comment.
  const trimmed = escaped.trimEnd();
  return trimmed.endsWith('\\') ? `${trimmed}.` : trimmed;
}
