/**
 * The WGSL subgroup variants against the portable code: kernel time of each example's prefill
 * (B·H = 4, T = 512, the examples' own D and K), both variants built on the same device and timed
 * alternately, median of N runs each, with the ratio portable / subgroups.
 * Usage: npx tsx bench/subgroups.ts [--runs N] [--tokens T]
 */
import { webgpuInnerLoop } from '../cli/link.ts';
import { innerLoopInputs } from '../runtime/inner-loop.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { randomInputs } from '../tests/support/inputs.ts';
import { compileExample, exampleFiles } from '../tests/support/specs.ts';
import { median } from './stats.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', 7);
const T = arg('tokens', 512);
const [B, H] = [2, 2];

const ctx = await getGPUDevice();
if (!ctx.subgroupWidth) {
  console.log(`"${ctx.adapterName}" has no subgroups: nothing to compare.`);
  process.exit(0);
}
console.log(
  `WGSL prefill kernels on "${ctx.adapterName}" (subgroups of ${ctx.subgroupWidth} lanes): B·H = ${B * H}, T = ${T}, median of ${RUNS} kernel times each`,
);
console.log('example'.padEnd(24), 'portable ms'.padStart(12), 'subgroups ms'.padStart(13), 'ratio'.padStart(7));
for (const spec of exampleFiles) {
  const c = compileExample(spec);
  const portable = await webgpuInnerLoop(c, { ...ctx, subgroupWidth: 0 });
  const lanes = await webgpuInnerLoop(c, ctx);
  if (!lanes.subgroupWidth) {
    console.log(spec.padEnd(24), '(no row sums to split)');
    continue;
  }
  const inputs = innerLoopInputs(c.signature, randomInputs(c.chunk, { B, H, T, seed: 1 }));
  const kernelMs = async (loop: typeof portable) => {
    let ms = 0;
    await loop.run(inputs, { onPhase: (phase, t) => phase === 'kernels' && (ms = t) });
    return ms;
  };
  await kernelMs(portable);
  await kernelMs(lanes);
  const times: [number[], number[]] = [[], []];
  for (let r = 0; r < RUNS; r++) {
    times[0].push(await kernelMs(portable));
    times[1].push(await kernelMs(lanes));
  }
  const [p, s] = times.map(median);
  console.log(spec.padEnd(24), p.toFixed(1).padStart(12), s.toFixed(1).padStart(13), (p / s).toFixed(2).padStart(7));
}
