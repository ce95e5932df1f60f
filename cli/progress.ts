/**
 * Phase timings of long `run` and `layer` work, on stderr so stdout keeps only the result: on a
 * terminal, or anywhere with --verbose.
 */
import type { CliIO } from './io.ts';

export function phases(io: CliIO, verbose: boolean) {
  const show = verbose || Boolean(io.interactive);
  return {
    async time<T>(label: string, work: () => Promise<T>): Promise<T> {
      // On a terminal, say what is happening before a phase that may take seconds.
      if (io.interactive) io.err(`${label}...`);
      const started = performance.now();
      const result = await work();
      if (show) io.err(`${label}: ${(performance.now() - started).toFixed(1)} ms`);
      return result;
    },
    report(text: string): void {
      if (show) io.err(text);
    },
  };
}
