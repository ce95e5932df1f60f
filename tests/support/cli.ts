/** Runs the `tttc` command in-process, capturing what it prints. */
import { main } from '../../cli/main.ts';

export async function tttc(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => (out += t + '\n'), err: (t) => (err += t + '\n') });
  return { code, out, err };
}
