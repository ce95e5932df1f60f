/**
 * Compile time per spec, in-process: parse, check, lower, differentiate and derive the mini-batch
 * program (what `tttc check` does), median of many runs after a warm-up. Goal: under 20 ms. Then
 * the same with the WGSL rendered, and with the CUDA forward (f32, sm_90) rendered: its threads per
 * block chosen by the scheduler, which schedules the kernel at every size it weighs, and fixed
 * (`threads: 256`), for what the choice costs.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compileSpec } from '../compiler/pipeline.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import { renderWgsl } from '../targets/wgsl/render.ts';
import { timeMedian } from './stats.ts';

const examples = resolve(import.meta.dirname, '../examples');
const RUNS = 50;

console.log(`compile time, median of ${RUNS} runs after 10 warm-up runs (node ${process.version})`);
console.log(
  'spec'.padEnd(26),
  'derive (ms)'.padStart(12),
  '+ WGSL (ms)'.padStart(12),
  '+ CUDA (ms)'.padStart(12),
  '+ CUDA, 256 (ms)'.padStart(17),
  'IR nodes'.padStart(9),
);
for (const name of readdirSync(examples)
  .filter((f) => f.endsWith('.ttt'))
  .sort()) {
  const file = join(examples, name);
  const text = readFileSync(file, 'utf8');
  const derive = () => {
    const r = compileSpec(text, { file });
    if (!r.ok) throw new Error(`${name} does not compile`);
    return r.compiled;
  };
  const ms = await timeMedian(RUNS, 10, derive);
  const withWgsl = await timeMedian(RUNS, 10, () => renderWgsl(derive()));
  const withCuda = await timeMedian(RUNS, 10, () => renderCuda(derive(), { arch: 'sm_90', dtype: 'f32' }));
  const fixed = await timeMedian(RUNS, 10, () => renderCuda(derive(), { arch: 'sm_90', dtype: 'f32', threads: 256 }));
  console.log(
    name.padEnd(26),
    ms.toFixed(2).padStart(12),
    withWgsl.toFixed(2).padStart(12),
    withCuda.toFixed(2).padStart(12),
    fixed.toFixed(2).padStart(17),
    String(derive().chunk.program.nodes.length).padStart(9),
  );
}
