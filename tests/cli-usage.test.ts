/** The command line's edges: version, help, strict arguments, JSON, colour, escaping, example inputs. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tttc } from './support/cli.ts';
import { colourDiagnostics, escapeControl, wantsColour } from '../cli/io.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { repoRoot } from './support/specs.ts';

const example = (name: string) => join(repoRoot, 'examples', name);
const scratch = () => mkdtempSync(join(tmpdir(), 'tttc-usage-'));
const bin = join(repoRoot, 'bin/tttc.mjs');

describe('tttc usage', () => {
  it('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    expect(await tttc('--version')).toMatchObject({ code: 0, out: `tttc ${version}\n` });
  });

  it('help COMMAND prints that command’s usage; an unknown one is refused', async () => {
    for (const command of ['check', 'grad', 'compile', 'run', 'layer', 'example-inputs']) {
      const r = await tttc('help', command);
      expect(r.code, command).toBe(0);
      expect(r.out, command).toContain(`usage: tttc ${command}`);
    }
    expect((await tttc('help', 'frobnicate')).code).toBe(2);
  });

  it('refuses unknown short and long options, extra arguments and empty values', async () => {
    const spec = example('ttt_linear.ttt');
    const cases: [string[], string][] = [
      [['check', spec, '-d'], 'unknown option -d'],
      [['compile', spec, '-out', 'x'], 'unknown option -out'],
      [['check', spec, '--frob'], 'unknown option --frob'],
      [['check', spec, 'extra.ttt'], "unexpected argument 'extra.ttt'"],
      [['compile', spec, '--target', ''], '--target needs a value'],
      [['compile', spec, '--target', 'wgsl,'], '--target has an empty entry'],
      [['compile', spec, '--out='], '--out needs a value'],
      [['layer', spec, '--weights', 'w', '--input', 'x', '--out', 'y', '--base-lr', ''], '--base-lr needs a value'],
      [['layer', spec, '--weights', 'w', '--input', 'x', '--out', 'y', '--base-lr', ' '], '--base-lr expects a number'],
      [['check', spec, '--json=yes'], '--json takes no value'],
      [['check', spec, '--form', 'dual', '--form', 'primal'], '--form given twice'],
      [['compile', spec, '--arch', 'sm80'], 'arch must look like sm_80'],
      [['compile', spec, '--target', 'cuda', '--io', 'f16'], "io must be f32 or bf16, got 'f16'"],
      [['compile', spec, '--target', 'cuda,wgsl', '--io', 'bf16'], 'io bf16 is for the cuda target; WGSL kernels'],
      [['compile', spec, '--target', 'cuda', '--dtype', 'fp16'], "dtype must be f32, bf16 or tf32x3, got 'fp16'"],
      [
        ['compile', spec, '--target', 'wgsl', '--dtype', 'tf32x3'],
        "dtype tf32x3 picks the cuda target's matmul operands",
      ],
      [
        ['run', spec, '--inputs', 'in', '--out', 'out', '--backend', 'webgpu', '--dtype', 'bf16', '--arch', 'sm_80'],
        '--arch, --dtype choose the generated CUDA that --backend cuda-cpu runs; the webgpu backend runs none',
      ],
    ];
    for (const [argv, message] of cases) {
      const r = await tttc(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err, argv.join(' ')).toContain(`error TTT501: ${message}`);
    }
  });

  it('check --json prints the summary and diagnostics as data', async () => {
    const ok = JSON.parse((await tttc('check', example('ttt_mlp.ttt'), '--json', '-D', 'D=32')).out);
    expect(ok).toMatchObject({ ok: true, diagnostics: [], layer: { name: 'TTTMLP', dims: { D: 32 } } });
    expect(ok.layer.forms.map((f: { state: string }) => f.state)).toEqual(['W1', 'b1', 'W2', 'b2']);
    const dir = scratch();
    writeFileSync(join(dir, 'bad.ttt'), 'layer L {\n  dim D = 4\n  state W: [D, E]\n}\n');
    const bad = await tttc('check', join(dir, 'bad.ttt'), '--json');
    expect(bad.code).toBe(1);
    const parsed = JSON.parse(bad.out);
    expect(parsed.ok).toBe(false);
    expect(parsed.diagnostics).toContainEqual(
      expect.objectContaining({ severity: 'error', line: 3, column: expect.any(Number), file: join(dir, 'bad.ttt') }),
    );
  });

  it('compile --json lists the files written', async () => {
    const dir = scratch();
    const r = await tttc('compile', example('ttt_linear.ttt'), '--target', 'ir,wgsl', '--out', dir, '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      ok: true,
      diagnostics: [],
      written: [
        'ttt_linear.ir.txt',
        'ttt_linear.wgsl',
        'ttt_linear.subgroups.wgsl',
        'ttt_linear.checkpoints.wgsl',
        'ttt_linear.checkpoints.subgroups.wgsl',
        'ttt_linear.backward.wgsl',
        'ttt_linear.backward.subgroups.wgsl',
      ].map((f) => join(dir, f)),
    });
  });

  it('escapes control characters from specs and colours only where asked', () => {
    expect(escapeControl('a\x1b[31mb\x07c\td\ne\u202ef')).toBe('a\\x1b[31mb\\x07c\td\ne\\u202ef');
    expect(wantsColour({ isTTY: true }, {})).toBe(true);
    expect(wantsColour({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(wantsColour({ isTTY: false }, {})).toBe(false);
    expect(colourDiagnostics('f.ttt:1:2: error TTT101: x')).toContain('\x1b[31merror TTT101\x1b[0m');

    const dir = scratch();
    const spec = join(dir, 'evil.ttt');
    writeFileSync(spec, 'layer L {\n  dim D = 4 \x1b]0;pwned\x07\n}\n');
    const r = spawnSync(process.execPath, [bin, 'check', spec], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('\\x1b]0;pwned\\x07');
    expect(r.stderr).not.toMatch(/[\x07\x1b]/);
  });

  it('example-inputs writes inputs that run, and weights and hidden states that a layer runs', async () => {
    const dir = scratch();
    const [inputs, weights, hidden, out] = ['in', 'w', 'x', 'y'].map((n) => join(dir, `${n}.safetensors`));
    const spec = example('ttt_mlp.ttt');
    const made = await tttc(
      'example-inputs',
      spec,
      '-D',
      'D=16',
      '-D',
      'H=32',
      '--out',
      inputs,
      '--weights',
      weights,
      '--hidden',
      hidden,
      '--tokens',
      '20',
    );
    expect(made.code, made.err).toBe(0);
    expect((await readSafetensorsFile(inputs)).get('k').shape).toEqual([1, 2, 20, 16]);
    const run = await tttc('run', spec, '-D', 'D=16', '-D', 'H=32', '--inputs', inputs, '--out', out);
    expect(run.code, run.err).toBe(0);
    const layer = await tttc(
      'layer',
      spec,
      '-D',
      'D=16',
      '-D',
      'H=32',
      '--weights',
      weights,
      '--input',
      hidden,
      '--out',
      out,
      '--verbose',
    );
    expect(layer.code, layer.err).toBe(0);
    expect(layer.err).toMatch(/set-up \(reference: weights, kernels\): [\d.]+ ms/);
    const y = (await readSafetensorsFile(out)).get('output');
    expect(y.shape).toEqual([1, 20, 32]);
    expect([...y.data].every((v) => Number.isFinite(Number(v)))).toBe(true);
  });

  it('refuses weights whose metadata has rope_theta <= 0 or a negative rate, and lists accepted dtypes', async () => {
    const dir = scratch();
    const [inputs, weights, hidden, out] = ['in', 'w', 'x', 'y'].map((n) => join(dir, `${n}.safetensors`));
    const spec = example('ttt_linear.ttt');
    const D = ['-D', 'D=16'];
    expect(
      (await tttc('example-inputs', spec, ...D, '--out', inputs, '--weights', weights, '--hidden', hidden)).code,
    ).toBe(0);
    const file = await readSafetensorsFile(weights);
    for (const [key, value, message] of [
      ['rope_theta', '0', 'rope_theta must be a finite number > 0, got 0'],
      ['rope_theta', '-5', 'rope_theta must be a finite number > 0, got -5'],
      ['ttt_base_lr', '-1', 'the base inner learning rate must be a finite number >= 0, got -1'],
      ['ttt_base_lr', '', "__metadata__ 'ttt_base_lr' is '', not a number"],
    ]) {
      await writeSafetensorsFile(weights, file.tensors, { ...file.metadata, [key]: value });
      const r = await tttc('layer', spec, ...D, '--weights', weights, '--input', hidden, '--out', out);
      expect(r.code, `${key}=${value}`).toBe(1);
      expect(r.err).toContain(`error TTT502: ${message}`);
    }
    await writeSafetensorsFile(inputs, { k: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } });
    const r = await tttc('run', spec, ...D, '--inputs', inputs, '--out', out);
    expect(r.code).toBe(1);
    expect(r.err).toContain("tensor 'k' has dtype U8; expected one of F64, F32, F16, BF16, I64, I32");
  });

  it('a WebGPU run prints nothing on stderr but what was asked for', () => {
    const dir = scratch();
    const [inputs, out] = ['in', 'out'].map((n) => join(dir, `${n}.safetensors`));
    const spec = example('ttt_linear.ttt');
    execFileSync(process.execPath, [bin, 'example-inputs', spec, '-D', 'D=8', '-D', 'K=4', '--out', inputs]);
    const r = spawnSync(
      process.execPath,
      [bin, 'run', spec, '-D', 'D=8', '-D', 'K=4', '--inputs', inputs, '--out', out, '--backend', 'webgpu'],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
  });
});
