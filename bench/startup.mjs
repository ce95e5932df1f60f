// Whole-process start-up of the built command (dist/, `npm run build` first): the median of many
// runs of `tttc check` and `tttc compile --target wgsl,cuda`, beside a bare `node` for the floor.
// Wall time, and CPU time (user + system, through /usr/bin/time) which a busy machine inflates less.
//
//   node bench/startup.mjs [runs]        (npm run bench:startup)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(process.argv[2] ?? 15);
const bin = join(root, 'bin/tttc.mjs');
const out = mkdtempSync(join(tmpdir(), 'tttc-startup-'));
const spec = join(root, 'examples/ttt_mlp.ttt');

const cases = [
  ['node -e 0 (floor)', ['-e', '0']],
  ['tttc --help', [bin, '--help']],
  ['tttc check ttt_mlp.ttt', [bin, 'check', spec]],
  ['tttc compile ttt_mlp.ttt --target wgsl,cuda', [bin, 'compile', spec, '--target', 'wgsl,cuda', '--out', out]],
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const timeCommand = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
for (const [name, args] of cases) {
  const times = [];
  const cpu = [];
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    const r = timeCommand
      ? spawnSync(timeCommand, ['-f', 'cpu %U %S', process.execPath, ...args], { encoding: 'utf8' })
      : spawnSync(process.execPath, args, { encoding: 'utf8' });
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr}`);
    const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
    if (m) cpu.push((Number(m[1]) + Number(m[2])) * 1000);
  }
  const ms = (x) => `${x.toFixed(0)} ms`;
  console.log(
    `${name.padEnd(46)} median ${ms(median(times))} (min ${ms(Math.min(...times))}, max ${ms(Math.max(...times))})` +
      (cpu.length ? `, CPU median ${ms(median(cpu))}` : '') +
      `, ${runs} runs`,
  );
}
rmSync(out, { recursive: true, force: true });
