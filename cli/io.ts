/** Where CLI commands print; tests pass their own to capture the text. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal that shows progress lines (default: no). */
  interactive?: boolean;
}

// C0 and C1 control characters other than tab and newline, and Unicode's bidirectional overrides:
// spec text and file names must not move the cursor, ring the bell or reorder what the user reads.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

export function escapeControl(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Colours on a terminal, unless NO_COLOR is set (https://no-color.org) or TERM is dumb. */
export function wantsColour(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb';
}

const SGR = { red: '31', yellow: '33', cyan: '36', bold: '1' } as const;
const paint = (code: string, text: string) => `\x1b[${code}m${text}\x1b[0m`;

/** Colours the severity and code of diagnostic lines (`file:line:col: error TTT101: ...`) and `hint:`. */
export function colourDiagnostics(text: string): string {
  return text
    .replace(
      /^(.*?: )?(error|warning)( TTT\d+)?:/gm,
      (_, where = '', severity: string, code = '') =>
        `${where && paint(SGR.bold, where.slice(0, -2))}${where && ': '}${paint(severity === 'error' ? SGR.red : SGR.yellow, severity + code)}:`,
    )
    .replace(/^(\s*= )hint:/gm, (_, lead: string) => `${lead}${paint(SGR.cyan, 'hint')}:`);
}

const line = (t: string) => (t.endsWith('\n') ? t : t + '\n');

export const processIO: CliIO = {
  out: (t) => process.stdout.write(line(escapeControl(t))),
  err: (t) => {
    const safe = escapeControl(t);
    process.stderr.write(line(wantsColour(process.stderr) ? colourDiagnostics(safe) : safe));
  },
  interactive: Boolean(process.stderr.isTTY),
};
