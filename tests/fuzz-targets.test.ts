/**
 * Whatever `tttc check` accepts compiles for every target: hundreds of seeded mutants of the
 * examples and the unusual specs go through the compiler; every distinct WGSL kernel of those it
 * accepts must be accepted by Dawn (the shader module is created), and a sample of the distinct
 * CUDA sources by nvcc (results cached by content under build/, so reruns are quick).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { compileSpec } from '../compiler/pipeline.ts';
import { tttLexer } from '../compiler/syntax/lexer.ts';
import { getGPUDevice } from '../runtime/webgpu/device.ts';
import { compileShader } from '../runtime/webgpu/shader.ts';
import { renderCuda } from '../targets/cuda/render.ts';
import type { GeneratedFile } from '../targets/target.ts';
import { wgslManifest } from '../targets/wgsl/render.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';
import { rng } from './support/random.ts';
import { repoRoot } from './support/specs.ts';

const execFileAsync = promisify(execFile);
const MUTANTS = 600;
/** Distinct CUDA sources built with nvcc per run (each takes seconds). */
const CUDA_SAMPLE = 4;
const cache = join(repoRoot, 'build/fuzz-cuda');

const SOURCES = [
  ...readdirSync(join(repoRoot, 'examples'))
    .filter((f) => f.endsWith('.ttt'))
    .sort()
    .map((f) => readFileSync(join(repoRoot, 'examples', f), 'utf8')),
  ...Object.values(UNUSUAL_SPECS),
];

/** Numbers at and beyond the edges of f32, and ordinary ones. */
const NUMBERS = ['0', '1', '2', '0.5', '7', '100', '1e-6', '1e-45', '1e30', '3.4e38', '3.5e38', '1e39', '1e999'];
const UNARY = ['sqrt', 'rsqrt', 'exp', 'log', 'tanh', 'relu', 'square', 'gelu', 'gelu_tanh', 'sigmoid', 'silu'];
const OPERATORS = ['+', '-', '*', '/'];
/** Names that generated code, or the languages it is written in, use for themselves. */
const RISKY_NAMES = [
  ...['var', 'loop', 'select', 'array', 'u32', 'i32', 'vec4', 'main', 'bitcast', 'ptr', 'override', 'enable'],
  ...['int', 'float', 'auto', 'class', 'const', 'inline', 'threadIdx', 'blockIdx', 'half', 'bool', 'signed'],
  ...['def', 'import', 'lambda', 'None', 'self', 'torch', 'pass', 'yield', 'await', 'this', 'new', 'delete'],
  ...['bh', 'tid', 'wid', 'u', 'acc', 'smem', 'scratch', 'out', 'tokens', 'weights', 'state_in', 'state_out'],
  ...['lr', 'scale', 'start', 'B', 'T', 'H', 'BH', 'e', 'i', 'j', 'r', 'out_W', 'state_W', 'accum_W', 'view_k'],
];
const TOKENS = [...NUMBERS, ...UNARY, ...OPERATORS, '@', '(', ')', ',', 'sum', 'mean', 'transpose', 'layernorm', 'dot'];

/** Whether a token lies in a value expression: after `=` or `return` on a line of a fn, let, loss or output. */
function inExpression(text: string, offset: number): boolean {
  const line = text.slice(text.lastIndexOf('\n', offset - 1) + 1, offset).trim();
  return /^(fn|let|loss|output|return)\b/.test(line) && /(=|return)/.test(line);
}

/**
 * One edit. Most swap a number, function or operator of an expression for another, or wrap an
 * operand in a function or an operation with a number, so that the mutant often still checks;
 * the rest copy, delete or insert tokens anywhere.
 */
function mutate(text: string, pick: (n: number) => number): string {
  const tokens = tttLexer.tokenize(text).tokens;
  if (tokens.length === 0) return text;
  const choose = (list: string[]) => list[pick(list.length)]!;
  const values = tokens.map((_, k) => k).filter((k) => inExpression(text, tokens[k]!.startOffset));
  if (pick(6) === 0) return rename(text, tokens, pick);
  const structural = values.length === 0 || pick(5) === 0;
  const k = structural ? pick(tokens.length) : values[pick(values.length)]!;
  const { image, startOffset: a } = tokens[k]!;
  const replace = (by: string) => text.slice(0, a) + by + text.slice(a + image.length);
  if (structural) {
    switch (pick(3)) {
      case 0:
        return replace(tokens[pick(tokens.length)]!.image);
      case 1:
        return replace('');
      default:
        return text.slice(0, a) + ` ${choose(TOKENS)} ` + text.slice(a);
    }
  }
  if (/^[\d.]/.test(image)) return pick(2) ? replace(choose(NUMBERS)) : replace(`${choose(UNARY)}(${image})`);
  if (UNARY.includes(image)) return replace(choose(UNARY));
  if (OPERATORS.includes(image)) return replace(choose(OPERATORS));
  if (/^[A-Za-z_]/.test(image) && tokens[k + 1]?.image !== '(' && tokens[k + 1]?.image !== ':')
    return pick(2)
      ? replace(`(${image} ${choose(OPERATORS)} ${choose(NUMBERS)})`)
      : replace(`${choose(UNARY)}(${image})`);
  return text;
}

/** Every occurrence of one of the spec's names, renamed to a name the targets use themselves. */
function rename(text: string, tokens: { image: string }[], pick: (n: number) => number): string {
  const names = [...new Set(tokens.map((t) => t.image).filter((t) => /^[A-Za-z_]\w*$/.test(t)))];
  const from = names[pick(names.length)];
  if (!from) return text;
  return text.replace(new RegExp(`\\b${from}\\b`, 'g'), RISKY_NAMES[pick(RISKY_NAMES.length)]!);
}

interface Accepted {
  spec: string;
  wgsl: string[];
  cuda: string;
}

const accepted: Accepted[] = [];
/** The generated CUDA files (source, header, binding) by the source's text. */
const cudaFiles = new Map<string, GeneratedFile[]>();
let mutants = 0;

beforeAll(() => {
  const random = rng(20261201);
  const pick = (n: number) => Math.floor(random() * n);
  for (let i = 0; i < MUTANTS; i++) {
    let text = SOURCES[pick(SOURCES.length)]!;
    for (let edits = 1 + pick(3); edits > 0; edits--) text = mutate(text, pick);
    mutants++;
    const result = compileSpec(text, { file: 'mutant.ttt' });
    if (!result.ok) continue;
    // Every accepted spec must render; a throw here fails the test with the spec in hand.
    const manifest = wgslManifest(result.compiled);
    const cuda = renderCuda(result.compiled, { arch: 'sm_90', dtype: 'f32' });
    const wgsl = [manifest, ...(manifest.decode ? [manifest.decode] : [])].flatMap((k) => [
      k.code,
      ...(k.subgroup ? [k.subgroup.code] : []),
    ]);
    const source = cuda.files.find((f) => f.path.endsWith('.cu'))!.contents;
    cudaFiles.set(source, cuda.files);
    accepted.push({ spec: text, wgsl, cuda: source });
  }
});

const digest = (s: string) => createHash('sha256').update(s).digest('hex').slice(0, 24);

describe(`mutants of the examples and unusual specs`, () => {
  it('hundreds are accepted by the checker', () => {
    expect(accepted.length).toBeGreaterThan(100);
  });

  it('Dawn accepts the WGSL of every accepted mutant, portable and subgroup variants', async () => {
    const { device } = await getGPUDevice();
    const distinct = new Map<string, string>();
    for (const a of accepted) for (const code of a.wgsl) if (!distinct.has(code)) distinct.set(code, a.spec);
    const rejected: string[] = [];
    for (const [code, spec] of distinct) {
      try {
        await compileShader(device, code, 'mutant');
      } catch (e) {
        rejected.push(`${(e as Error).message.slice(0, 600)}\n--- spec ---\n${spec}`);
      }
    }
    console.log(
      `fuzz: ${mutants} mutants, ${accepted.length} accepted, ${distinct.size} distinct WGSL kernels, ${rejected.length} rejected by Dawn`,
    );
    expect(rejected.slice(0, 3)).toEqual([]);
  }, 120_000);

  it('nvcc accepts a sample of the distinct CUDA sources', async () => {
    const distinct = new Map<string, string>();
    for (const a of accepted) if (!distinct.has(a.cuda)) distinct.set(a.cuda, a.spec);
    // Spread over the mutants, in a fixed order.
    const all = [...distinct.keys()];
    const step = Math.max(1, Math.floor(all.length / CUDA_SAMPLE));
    const sample = all.filter((_, i) => i % step === 0).slice(0, CUDA_SAMPLE);
    mkdirSync(cache, { recursive: true });
    const build = async (source: string): Promise<string | undefined> => {
      const dir = join(cache, digest(source));
      if (existsSync(join(dir, 'ok'))) return undefined;
      mkdirSync(dir, { recursive: true });
      for (const f of cudaFiles.get(source)!) writeFileSync(join(dir, f.path), f.contents);
      try {
        await execFileAsync('nvcc', ['-c', '-gencode=arch=compute_90,code=sm_90', 'mutant.cu', '-o', 'mutant.o'], {
          cwd: dir,
        });
        writeFileSync(join(dir, 'ok'), '');
        return undefined;
      } catch (e) {
        return `${(e as { stderr?: string }).stderr ?? String(e)}\n--- spec ---\n${distinct.get(source)}`;
      }
    };
    // Two at a time: the CI machine has two cores.
    const failures: string[] = [];
    for (let i = 0; i < sample.length; i += 2) {
      for (const f of await Promise.all(sample.slice(i, i + 2).map(build))) if (f) failures.push(f);
    }
    console.log(
      `fuzz: ${distinct.size} distinct CUDA sources, ${sample.length} built with nvcc, ${failures.length} rejected`,
    );
    expect(failures.slice(0, 3)).toEqual([]);
  }, 300_000);
});
