/**
 * Golden files: the WGSL and CUDA generated for every example, as a reviewer reads them, in
 * tests/golden/. A change to the generated code shows up here as a diff to review; after a
 * deliberate change, regenerate them with `TTTC_UPDATE_GOLDEN=1 npx vitest run tests/golden.test.ts`.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import type { TargetOptions } from '../targets/target.ts';
import { renderWgsl } from '../targets/wgsl/render.ts';
import { exampleFiles, repoRoot } from './support/specs.ts';

const GOLDEN = join(repoRoot, 'tests', 'golden');
const UPDATE = process.env.TTTC_UPDATE_GOLDEN === '1';

/** The example as `tttc compile examples/NAME.ttt` sees it: a path relative to the repository. */
function compile(name: string) {
  const file = `examples/${name}`;
  const text = readFileSync(join(repoRoot, file), 'utf8');
  const r = compileSpec(text, { file });
  if (!r.ok) throw new Error(formatDiagnostics(r.diagnostics, text));
  return r.compiled;
}

function expectGolden(path: string, contents: string): void {
  const file = join(GOLDEN, path);
  if (UPDATE || !existsSync(file)) {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, contents);
    if (!UPDATE) throw new Error(`wrote the missing golden file tests/golden/${path}; review and commit it`);
    return;
  }
  expect(contents, `tests/golden/${path} (TTTC_UPDATE_GOLDEN=1 regenerates)`).toBe(readFileSync(file, 'utf8'));
}

/**
 * TTT-Linear's CUDA under other options: bf16 operands (the products on tensor cores, the state's
 * update from its product's accumulator), tf32x3 (the same on tf32, staged as f32 and split in
 * three mma), bf16 I/O (the kernel's loads and stores and the header's fields).
 */
const VARIANTS: { suffix: string; options: Partial<TargetOptions>; header: boolean }[] = [
  { suffix: 'bf16', options: { dtype: 'bf16' }, header: false },
  { suffix: 'tf32x3', options: { dtype: 'tf32x3' }, header: false },
  { suffix: 'bf16-io', options: { io: 'bf16' }, header: true },
];

describe('generated code matches tests/golden/', () => {
  for (const name of exampleFiles) {
    const stem = name.replace(/\.ttt$/, '');
    it(`${stem}.wgsl`, () => expectGolden(`${stem}.wgsl`, renderWgsl(compile(name)).code));
    if (name === 'ttt_linear.ttt')
      it(`${stem}.subgroups.wgsl`, () =>
        expectGolden(`${stem}.subgroups.wgsl`, renderWgsl(compile(name)).subgroup!.code));
    it(`${stem}.cu`, () => {
      const cuda = renderCuda(compile(name), { arch: 'sm_90', dtype: 'f32' });
      expectGolden(`${stem}.cu`, cuda.files.find((f) => f.path === cuda.api.source)!.contents);
    });
    if (name === 'ttt_linear.ttt')
      for (const v of VARIANTS)
        it(`${stem}.${v.suffix}.cu${v.header ? ' and .h' : ''}`, () => {
          const cuda = renderCuda(compile(name), { arch: 'sm_90', dtype: 'f32', ...v.options });
          expectGolden(`${stem}.${v.suffix}.cu`, cuda.files.find((f) => f.path === cuda.api.source)!.contents);
          if (v.header)
            expectGolden(`${stem}.${v.suffix}.h`, cuda.files.find((f) => f.path === cuda.api.header)!.contents);
        });
  }
});
