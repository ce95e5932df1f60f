import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tttc } from './support/cli.ts';
import { compileSpec } from '../compiler/pipeline.ts';
import { relativeError } from '../core/tensor.ts';
import { toSafeTensors } from '../runtime/named-tensors.ts';
import { readSafetensorsFile, toFloat64, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { randomInputs } from './support/inputs.ts';
import { runRecurrence } from './support/recurrence.ts';
import { repoRoot } from './support/specs.ts';
import { readFileSync } from 'node:fs';

const rule = (name: string) => join(repoRoot, 'examples/rules', name);

describe('tttc with update rules beyond plain sgd', () => {
  it('check reports the rule and each state’s form', async () => {
    const r = await tttc('check', rule('titans_mlp_memory.ttt'));
    expect(r.code).toBe(0);
    expect(r.out).toContain('update:    sgd, W1 at lr, W2 at lr; decay: token, momentum: token');
    expect(r.out).toMatch(/W1\s+dual-matmul/);
  });

  it('compile renders read: after for the kernel targets, without a one-token decode kernel', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tttc-rules-'));
    const r = await tttc('compile', rule('ttt_mlp_noncausal.ttt'), '--target', 'ir,wgsl,cuda', '--out', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const files = readdirSync(out);
    expect(files.some((f) => f.endsWith('.wgsl'))).toBe(true);
    const cu = files.find((f) => f.endsWith('.cu') && !f.includes('torch'))!;
    expect(readFileSync(join(out, cu), 'utf8')).not.toMatch(/decode_kernel/);
  });

  it('run refuses to continue a read: after sequence mid-mini-batch (no token-by-token decode), naming the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-rules-'));
    const file = rule('ttt_mlp_noncausal.ttt');
    const defines = ['-D', 'D=4', '-D', 'H=6', '-D', 'K=4'];
    const compiled = compileSpec(readFileSync(file, 'utf8'), {
      file,
      overrides: new Map([
        ['D', 4],
        ['H', 6],
        ['K', 4],
      ]),
    });
    if (!compiled.ok) throw new Error('spec');
    const named = randomInputs(compiled.compiled.chunk, { B: 1, H: 1, T: 1, start: 1, seed: 4 });
    await writeSafetensorsFile(join(dir, 'in.safetensors'), toSafeTensors(named, 'F64'));
    const r = await tttc('run', file, ...defines, '--inputs', join(dir, 'in.safetensors'), '--out', join(dir, 'o.st'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('TTT502');
    expect(r.err).toContain("with read order 'after' a token reads the end of its mini-batch");
  });

  it('run on the reference reads decay, momentum and opt.* and writes opt.* like the state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-rules-'));
    const file = rule('titans_mlp_memory.ttt');
    const defines = new Map([
      ['D', 4],
      ['H', 6],
      ['K', 4],
    ]);
    const compiled = compileSpec(readFileSync(file, 'utf8'), { file, overrides: defines });
    if (!compiled.ok) throw new Error('spec');
    const named = randomInputs(compiled.compiled.chunk, { B: 1, H: 2, T: 6, start: 1, accum: true, seed: 3 });
    for (const [n, t] of named) if (n === 'lr') named.set(n, { shape: t.shape, data: t.data.map((x) => x / 4) });
    await writeSafetensorsFile(join(dir, 'in.safetensors'), toSafeTensors(named, 'F64'));
    const r = await tttc(
      'run',
      file,
      '-D',
      'D=4',
      '-D',
      'H=6',
      '-D',
      'K=4',
      '--inputs',
      join(dir, 'in.safetensors'),
      '--out',
      join(dir, 'out.safetensors'),
    );
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const got = await readSafetensorsFile(join(dir, 'out.safetensors'));
    const want = runRecurrence(compiled.compiled.layer, named);
    for (const [name, w] of want) expect(relativeError(toFloat64(got.get(name)), w.data), name).toBeLessThan(1e-10);
    expect([...got.tensors.keys()].sort()).toEqual([...want.keys()].sort());
  });

  it('a non-positive decay is refused with the tensor named (TTT502)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tttc-rules-'));
    const file = rule('gated_deltanet.ttt');
    const compiled = compileSpec(readFileSync(file, 'utf8'), { file, overrides: new Map([['D', 4]]) });
    if (!compiled.ok) throw new Error('spec');
    const named = randomInputs(compiled.compiled.chunk, { B: 1, H: 1, T: 3, seed: 4 });
    named.get('decay')!.data[1] = 0;
    await writeSafetensorsFile(join(dir, 'in.safetensors'), toSafeTensors(named, 'F64'));
    const r = await tttc('run', file, '-D', 'D=4', '--inputs', join(dir, 'in.safetensors'), '--out', join(dir, 'o.st'));
    expect(r.code).toBe(1);
    expect(r.err).toContain('TTT502');
    expect(r.err).toContain("'decay' has 0 at flat index 1");
  });
});
