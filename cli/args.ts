/** A small command-line parser: positional arguments, `--name value`, `--flag`, repeated `-D NAME=VALUE`. */

export class UsageError extends Error {}

export interface ParsedArgs {
  positional: string[];
  options: Map<string, string>;
  flags: Set<string>;
  defines: Map<string, number>;
}

export function parseArgs(argv: readonly string[], valued: readonly string[], flags: readonly string[]): ParsedArgs {
  const out: ParsedArgs = { positional: [], options: new Map(), flags: new Set(), defines: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-D' || a.startsWith('-D')) {
      const def = a === '-D' ? argv[++i] : a.slice(2);
      const m = def === undefined ? null : /^([A-Za-z_][A-Za-z0-9_]*)=(-?\d+)$/.exec(def);
      if (!m) throw new UsageError(`-D expects NAME=INTEGER, got '${def ?? ''}'`);
      out.defines.set(m[1], Number(m[2]));
    } else if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
      if (flags.includes(name)) out.flags.add(name);
      else if (valued.includes(name)) {
        const value = inline ?? argv[++i];
        if (value === undefined) throw new UsageError(`--${name} needs a value`);
        out.options.set(name, value);
      } else throw new UsageError(`unknown option --${name}`);
    } else if (a === '-h') out.flags.add('help');
    else out.positional.push(a);
  }
  return out;
}
