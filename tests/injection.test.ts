/**
 * Spec text that tries to escape into generated code: a carriage return, U+2028 and `*\/` in `#`
 * comments, a comment ending in a backslash, and a file name with newlines, quotes, `"""` and a
 * backslash. Every target's output must still compile (Dawn for WGSL, nvcc for CUDA, Python's
 * compile() for the binding, TypeScript's parser for the module) and no payload may start a line.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileSpec, type Compiled } from '../compiler/pipeline.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { compileShader } from '../runtime/webgpu/shader.ts';
import { loadTarget, TARGET_NAMES } from '../targets/index.ts';
import type { GeneratedFile } from '../targets/target.ts';

const execFileAsync = promisify(execFile);

/** What an attacker would like to run; it must never begin a line of generated code. */
const PAYLOAD = 'INJECTED_CODE();';

const SPEC = [
  'layer Injected {',
  '  dim D = 4',
  '  minibatch K = 2',
  '  state W: [D, D]',
  `  loss(k: [D], v: [D]) = sum(square(k @ W - v)) # ends the comment?\r#include "/etc/hostname"\r${PAYLOAD}`,
  `  output(q: [D]) = tanh(q @ W) # a line separator\u2028${PAYLOAD} and a paragraph one\u2029${PAYLOAD} */ ${PAYLOAD} /* \`\${${PAYLOAD}}\` \\`,
  `  update sgd(lr: token, scale: position) # splices the next line \\`,
  '}',
  '',
].join('\n');

// Everything after the last `/` too, where a base name is taken.
const FILE = `d"*/ir/evil\n${PAYLOAD}\r${PAYLOAD}\u2028${PAYLOAD}"""\n${PAYLOAD}\n" \\N{x} \\u \\.ttt`;

let compiled: Compiled;
const outputs = new Map<string, GeneratedFile[]>();
beforeAll(async () => {
  const result = compileSpec(SPEC, { file: FILE });
  if (!result.ok) throw new Error(result.diagnostics.map((d) => d.message).join('\n'));
  compiled = result.compiled;
  for (const name of TARGET_NAMES)
    outputs.set(name, await (await loadTarget(name)).emit(compiled, { arch: 'sm_90', dtype: 'f32' }));
});

const file = (target: string, ext: string) => outputs.get(target)!.find((f) => f.path.endsWith(ext))!;

describe('spec text in generated code', () => {
  it('starts no line and ends no comment with a splice, in any file of any target', () => {
    for (const [target, files] of outputs) {
      for (const f of files) {
        const lines = f.contents.split(/\r\n|[\n\r\u2028\u2029\u0085\u000b\u000c]/);
        expect(
          lines.filter((l) => l.trim().startsWith(PAYLOAD)),
          `${target}: ${f.path}`,
        ).toEqual([]);
        expect(
          lines.filter((l) => /(\/\/|#).*\\\s*$/.test(l)),
          `${target}: ${f.path}`,
        ).toEqual([]);
        expect(f.contents, `${target}: ${f.path}`).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u2028\u2029]/);
        expect(f.contents, `${target}: ${f.path}`).not.toContain('#include "/etc/hostname"\n');
      }
    }
  });

  it('the kernels quote the spec lines, escaped', () => {
    for (const code of [file('wgsl', '.wgsl').contents, file('cuda', '.cu').contents]) {
      expect(code).toContain('# ends the comment?\\u{d}#include "/etc/hostname"\\u{d}INJECTED_CODE();');
      expect(code).toContain('# a line separator\\u{2028}INJECTED_CODE();');
    }
  });

  it('the generated files are named from the file name with nothing but safe characters', () => {
    for (const files of outputs.values()) for (const f of files) expect(f.path).toMatch(/^[A-Za-z0-9_.]+$/);
  });

  it('the WGSL compiles in Dawn', async () => {
    const { device } = await getGPUDevice();
    await expect(compileShader(device, file('wgsl', '.wgsl').contents, 'injected')).resolves.toBeDefined();
  });

  it('the TypeScript module parses', () => {
    const ts_ = file('ts', '.ts');
    const out = ts.transpileModule(ts_.contents, { reportDiagnostics: true, fileName: ts_.path });
    expect(out.diagnostics?.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'))).toEqual([]);
  });

  it('the Python binding, its backward and its layer compile', async () => {
    const modules = outputs.get('cuda')!.filter((f) => f.path.endsWith('.py'));
    expect(modules.length).toBeGreaterThanOrEqual(2);
    for (const py of modules) {
      const script = 'import sys; compile(sys.stdin.read(), "binding.py", "exec")';
      const child = execFileAsync('python3', ['-c', script]);
      child.child.stdin!.end(py.contents);
      await expect(child, py.path).resolves.toBeDefined();
    }
  });

  it('the CUDA source and header compile with nvcc', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-injection-'));
    for (const f of outputs.get('cuda')!) writeFileSync(join(dir, f.path), f.contents);
    const source = file('cuda', '.cu').path;
    const args = ['-c', '-gencode=arch=compute_90,code=sm_90', '-Werror', 'all-warnings', source, '-o', 'k.o'];
    await expect(execFileAsync('nvcc', args, { cwd: dir })).resolves.toBeDefined();
  }, 120_000);
});
