/** A small command-line parser: positional arguments, `--name value`, `--flag`, repeated `-D NAME=VALUE`. */

import { THREAD_CHOICES } from '../targets/target.ts';

export class UsageError extends Error {}

/** `--threads N` (compile, run): one of THREAD_CHOICES, or absent. */
export function threadsOption(a: ParsedArgs): number | undefined {
  const text = a.options.get('threads');
  if (text === undefined) return undefined;
  if (!THREAD_CHOICES.includes(Number(text)) || !/^\d+$/.test(text))
    throw new UsageError(`--threads must be one of ${THREAD_CHOICES.join(', ')}, got '${text}'`);
  return Number(text);
}

export interface ParsedArgs {
  positional: string[];
  options: Map<string, string>;
  flags: Set<string>;
  defines: Map<string, number>;
}

export interface ArgSpec {
  /** Options that take a value (`--name value` or `--name=value`); an empty value is refused. */
  valued: readonly string[];
  flags: readonly string[];
  /** How many positional arguments the command takes; more are refused. */
  positional: number;
}

export function parseArgs(argv: readonly string[], spec: ArgSpec): ParsedArgs {
  const out: ParsedArgs = { positional: [], options: new Map(), flags: new Set(), defines: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('-D')) {
      const def = a === '-D' ? argv[++i] : a.slice(2);
      const m = def === undefined ? null : /^([A-Za-z_][A-Za-z0-9_]*)=(-?\d+)$/.exec(def);
      if (!m) throw new UsageError(`-D expects NAME=INTEGER, got '${def ?? ''}'`);
      out.defines.set(m[1], Number(m[2]));
    } else if (a.startsWith('--')) {
      const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
      if (spec.flags.includes(name)) {
        if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
        out.flags.add(name);
      } else if (spec.valued.includes(name)) {
        const value = inline ?? argv[++i];
        if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
        if (out.options.has(name)) throw new UsageError(`--${name} given twice`);
        out.options.set(name, value);
      } else throw new UsageError(`unknown option --${name}`);
    } else if (a === '-h') out.flags.add('help');
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else out.positional.push(a);
  }
  if (out.positional.length > spec.positional) {
    const extra = out.positional.slice(spec.positional);
    throw new UsageError(`unexpected argument${extra.length === 1 ? '' : 's'} ${extra.map((e) => `'${e}'`).join(' ')}`);
  }
  return out;
}
