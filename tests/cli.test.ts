import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tttc } from './support/cli.ts';
import { relativeError } from '../core/tensor.ts';
import { readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { toSafeTensors } from '../runtime/named-tensors.ts';
import { randomInputs } from './support/inputs.ts';
import { loadReference } from './support/reference-vectors.ts';
import { compileExample, repoRoot } from './support/specs.ts';

const example = (name: string) => join(repoRoot, 'examples', name);
const scratch = () => mkdtempSync(join(tmpdir(), 'tttc-cli-'));

describe('tttc', () => {
  it('the installed command runs (bin/tttc.mjs)', () => {
    const out = execFileSync(process.execPath, [join(repoRoot, 'bin/tttc.mjs'), 'check', example('ttt_mlp.ttt')], {
      encoding: 'utf8',
    });
    expect(out).toContain('TTTMLP: ok');
    expect(out).toMatch(/W1\s+dual-matmul/);
  });

  it('check summarises dims, state, params, views and forms, with -D overrides', async () => {
    const r = await tttc('check', example('ttt_mlp.ttt'), '-D', 'D=32', '-DK=8');
    expect(r.code).toBe(0);
    expect(r.out).toContain('D = 32, H = 128; minibatch K = 8');
    expect(r.out).toContain('W1 [32, 128]');
    expect(r.out).toMatch(/b1\s+dual-elementwise/);
  });

  it('check reports the primal fallback and fails when the dual form is forced', async () => {
    expect((await tttc('check', example('weightnorm_linear.ttt'))).out).toMatch(/W\s+primal\s+\(state W is used here/);
    const forced = await tttc('check', example('weightnorm_linear.ttt'), '--form', 'dual');
    expect(forced.code).toBe(1);
    expect(forced.err).toContain('error TTT401');
    expect(forced.err).toContain('weightnorm_linear.ttt:11:');
  });

  it('a malformed spec exits 1 with diagnostics, an unknown -D name too', async () => {
    const dir = scratch();
    const bad = join(dir, 'bad.ttt');
    writeFileSync(bad, 'layer L {\n  dim D = 4\n  state W: [D, E]\n}\n');
    const r = await tttc('check', bad);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.ttt:3:\d+: error TTT\d{3}/);
    expect(r.err).toContain('hint:');
    const override = await tttc('check', example('delta_rule.ttt'), '-D', 'Q=3');
    expect(override.code).toBe(1);
    expect(override.err).toContain('TTT306');
  });

  it('bad usage exits 2 and says what is wrong', async () => {
    expect((await tttc('frobnicate')).code).toBe(2);
    const r = await tttc('compile', example('delta_rule.ttt'), '--target', 'verilog');
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown target 'verilog'");
    expect((await tttc('check')).err).toContain('missing the spec file');
    expect((await tttc('check', 'no/such/file.ttt')).err).toContain('cannot read no/such/file.ttt');
  });

  it('every command has --help', async () => {
    for (const command of ['check', 'grad', 'compile', 'run']) {
      const r = await tttc(command, '--help');
      expect(r.code, command).toBe(0);
      expect(r.out, command).toContain(`usage: tttc ${command}`);
    }
    expect((await tttc('--help')).out).toContain('COMMAND');
  });

  it('grad prints the derived gradient program', async () => {
    const r = await tttc('grad', example('delta_rule.ttt'), '-D', 'D=4');
    expect(r.code).toBe(0);
    expect(r.out).toContain('grad.S');
    expect(r.out).toMatch(/matmul/);
  });

  it('compile writes every requested target and nothing on failure', async () => {
    const dir = scratch();
    const r = await tttc('compile', example('ttt_linear.ttt'), '--target', 'ir,wgsl', '--out', dir);
    expect(r.code).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([
      'ttt_linear.backward.subgroups.wgsl',
      'ttt_linear.backward.wgsl',
      'ttt_linear.checkpoints.subgroups.wgsl',
      'ttt_linear.checkpoints.wgsl',
      'ttt_linear.ir.txt',
      'ttt_linear.subgroups.wgsl',
      'ttt_linear.wgsl',
    ]);
    for (const f of ['ttt_linear.wgsl', 'ttt_linear.checkpoints.wgsl', 'ttt_linear.backward.wgsl'])
      expect(readFileSync(join(dir, f), 'utf8')).toContain('@compute');
    const empty = join(dir, 'empty');
    expect((await tttc('compile', example('weightnorm_linear.ttt'), '--form', 'dual', '--out', empty)).code).toBe(1);
    expect(existsSync(empty)).toBe(false);
  });

  it('compile --target ts writes the layer as a TypeScript module (tests/ts-target.test.ts runs it)', async () => {
    const dir = scratch();
    const r = await tttc('compile', example('ttt_linear.ttt'), '--target', 'ts', '--out', dir);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`wrote ${join(dir, 'ttt_linear.ts')}`);
    const text = readFileSync(join(dir, 'ttt_linear.ts'), 'utf8');
    expect(text).toContain("import * as tttc from 'tttc/runtime';");
    expect(text).toContain('export class TTTLinear {');
  });

  it('run on the reference backend reproduces the reference vectors, F64 in and out', async () => {
    const ref = await loadReference('linear_b2_h2_d64_k16_l64.safetensors');
    const dir = scratch();
    const inputs = join(dir, 'in.safetensors');
    const outputs = join(dir, 'out.safetensors');
    await writeSafetensorsFile(inputs, toSafeTensors(ref.inputs, 'F64'));
    const r = await tttc('run', example('ttt_linear.ttt'), '--inputs', inputs, '--out', outputs);
    expect(r.code, r.err).toBe(0);
    const out = await readSafetensorsFile(outputs);
    expect(out.get('output').dtype).toBe('F64');
    expect(relativeError(toFloat64(out.get('output')), ref.expected.get('output')!.data)).toBeLessThan(1e-10);
  });

  it('run on WebGPU writes F32 close to the reference', async () => {
    const c = compileExample('delta_rule.ttt', 'auto', { D: 16, K: 4 });
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 7, start: 2, accum: true, seed: 9 });
    const dir = scratch();
    const inputs = join(dir, 'in.safetensors');
    await writeSafetensorsFile(inputs, toSafeTensors(named, 'F32'));
    const run = async (backend: string) => {
      const out = join(dir, `${backend}.safetensors`);
      const r = await tttc(
        'run',
        example('delta_rule.ttt'),
        '-D',
        'D=16',
        '-D',
        'K=4',
        '--inputs',
        inputs,
        '--out',
        out,
        '--backend',
        backend,
      );
      expect(r.code, r.err).toBe(0);
      return readSafetensorsFile(out);
    };
    const [gpu, reference] = [await run('webgpu'), await run('reference')];
    expect(gpu.get('output').dtype).toBe('F32');
    for (const name of ['output', 'state.S', 'accum.S'])
      expect(relativeError(toFloat64(gpu.get(name)), toFloat64(reference.get(name))), name).toBeLessThan(1e-5);
  });

  it('run names the tensor and both shapes when an input is mis-shaped', async () => {
    const c = compileExample('delta_rule.ttt', 'auto', { D: 16, K: 4 });
    const named = randomInputs(c.chunk, { B: 1, H: 2, T: 3, seed: 1 });
    named.set('state.S', { shape: [1, 2, 16, 15], data: new Float64Array(480) });
    const dir = scratch();
    const inputs = join(dir, 'in.safetensors');
    await writeSafetensorsFile(inputs, toSafeTensors(named, 'F32'));
    const r = await tttc(
      'run',
      example('delta_rule.ttt'),
      '-D',
      'D=16',
      '-D',
      'K=4',
      '--inputs',
      inputs,
      '--out',
      join(dir, 'o.safetensors'),
    );
    expect(r.code).toBe(1);
    expect(r.err).toContain("'state.S' has shape [1, 2, 16, 15], expected [1, 2, 16, 16]");
    expect(existsSync(join(dir, 'o.safetensors'))).toBe(false);
  });
});
