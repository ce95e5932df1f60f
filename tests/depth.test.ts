/**
 * Specs thousands of levels deep (chained lets, fns calling fns declared before or after them)
 * compile to every target without overflowing the stack: no stage recurses on a spec's depth. The
 * three reach one chunk program (checked), so the targets are rendered from one of them.
 */
import { describe, expect, it } from 'vitest';
import { formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { compileSpec, type Compiled } from '../compiler/pipeline.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { compileShader } from '../runtime/webgpu/shader.ts';
import { loadTarget } from '../targets/index.ts';
import { buildModule } from '../targets/ts/module.ts';

const DEPTH = 2000;

function layer(members: string, f: string): string {
  return [
    'layer Deep {',
    '  dim D = 4',
    '  minibatch K = 2',
    '  state W: [D, D]',
    members,
    `  loss(k: [D], v: [D]) = sum(square(${f}(k) - v))`,
    `  output(q: [D]) = ${f}(q)`,
    '  update sgd(lr: token, scale: none)',
    '}',
    '',
  ].join('\n');
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

const SPECS: Record<string, string> = {
  'chained lets': layer(
    [
      '  fn f(x: [D]) -> [D] {',
      '    let a0 = x @ W',
      ...range(DEPTH).map((i) => `    let a${i + 1} = tanh(a${i}) * 0.5`),
      `    return a${DEPTH}`,
      '  }',
    ].join('\n'),
    'f',
  ),
  // Each fn calls the one declared before it.
  'fns calling earlier fns': layer(
    [
      '  fn g0(x: [D]) -> [D] = x @ W',
      ...range(DEPTH).map((i) => `  fn g${i + 1}(x: [D]) -> [D] = tanh(g${i}(x)) * 0.5`),
    ].join('\n'),
    `g${DEPTH}`,
  ),
  // Each fn calls the one declared after it.
  'fns calling later fns': layer(
    [
      ...range(DEPTH).map((i) => `  fn g${i}(x: [D]) -> [D] = tanh(g${i + 1}(x)) * 0.5`),
      `  fn g${DEPTH}(x: [D]) -> [D] = x @ W`,
    ].join('\n'),
    'g0',
  ),
};

function compiled(text: string): Compiled {
  const result = compileSpec(text, { file: 'deep.ttt' });
  if (!result.ok) throw new Error(formatDiagnostics(result.diagnostics, text));
  return result.compiled;
}

const options = { arch: 'sm_90', dtype: 'f32' } as const;

/** The IR target's text without the spec line each node comes from (which differs from spec to spec). */
async function programText(c: Compiled): Promise<string> {
  const [ir] = await (await loadTarget('ir')).emit(c, options);
  return ir!.contents.replace(/ +# line \d+/g, '');
}

describe('2000 levels deep', () => {
  // The front half (parse, check, inline, differentiate, derive) meets each spec's own nesting;
  // all three reach the same chunk program, so the back half, which sees only that, runs once.
  it.each(Object.keys(SPECS))(
    "%s reaches the chained lets' program",
    async (name) => {
      const [first] = Object.values(SPECS);
      expect(await programText(compiled(SPECS[name]!))).toBe(await programText(compiled(first!)));
    },
    60_000,
  );

  it('compiles to WGSL (which Dawn accepts), CUDA and a TypeScript module', async () => {
    const c = compiled(SPECS['chained lets']!);
    for (const target of ['wgsl', 'cuda']) {
      const files = await (await loadTarget(target)).emit(c, options);
      expect(files.length, target).toBeGreaterThan(0);
      // Deep chains are cut into buffered stages, so no generated line nests without bound.
      for (const f of files)
        expect(Math.max(...f.contents.split('\n').map((l) => l.length)), f.path).toBeLessThan(20_000);
      if (target === 'wgsl') {
        const { device } = await getGPUDevice();
        await compileShader(device, files[0]!.contents, 'deep');
      }
    }
    // The module's text, before formatting (prettier takes minutes on a kernel this large and walks no IR).
    expect(buildModule(c, 'deep')).toContain('export class Deep');
  }, 120_000);
});
