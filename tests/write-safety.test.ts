/**
 * Outputs never harm other files: a device, a directory, a symbolic link or an input given as
 * --out is refused and left as it was; compile writes all of its files or none.
 */
import { execFileSync } from 'node:child_process';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { tttc } from './support/cli.ts';
import { writeAllOrNone } from '../cli/write.ts';
import { checkOutputPath, writeFileSafely } from '../runtime/safe-write.ts';
import { repoRoot } from './support/specs.ts';

const spec = join(repoRoot, 'examples/ttt_linear.ttt');
const D = ['-D', 'D=8', '-D', 'K=4'];
const scratch = () => mkdtempSync(join(tmpdir(), 'tttc-safety-'));

describe('safe outputs', () => {
  let dir = '';
  let inputs = '';
  beforeAll(async () => {
    dir = scratch();
    inputs = join(dir, 'in.safetensors');
    expect((await tttc('example-inputs', spec, ...D, '--out', inputs)).code).toBe(0);
  });
  const run = (out: string) => tttc('run', spec, ...D, '--inputs', inputs, '--out', out);

  it('refuses a device without touching it', async () => {
    // Checked, not written: a regression here must not be able to replace /dev/null.
    await expect(checkOutputPath('/dev/null')).rejects.toThrow('/dev/null is a device; refusing to write over it');
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const r = await run(fifo);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${fifo} is a pipe; refusing to write over it`);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });

  it('refuses a directory and a symbolic link, leaving both as they were', async () => {
    const sub = join(dir, 'sub');
    mkdirSync(sub);
    expect((await run(sub)).err).toContain(`${sub} is a directory`);
    expect(readdirSync(sub)).toEqual([]);

    const target = join(dir, 'target.txt');
    writeFileSync(target, 'keep me');
    const link = join(dir, 'link.safetensors');
    symlinkSync(target, link);
    const r = await run(link);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${link} is a symbolic link`);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('keep me');
  });

  it('refuses an output that is an input, under its own name or another', async () => {
    const before = readFileSync(inputs);
    const same = await run(inputs);
    expect(same.code).toBe(1);
    expect(same.err).toContain(`the output ${inputs} is the input ${inputs}`);
    const alias = join(dir, 'alias.safetensors');
    linkSync(inputs, alias);
    expect((await run(alias)).err).toContain(`the output ${alias} is the input ${inputs}`);
    expect(readFileSync(inputs).equals(before)).toBe(true);
  });

  it('replaces a regular file atomically, keeping its mode, and leaves no temporary file', async () => {
    const out = join(dir, 'replace', 'out.safetensors');
    mkdirSync(join(dir, 'replace'));
    writeFileSync(out, 'old', { mode: 0o600 });
    expect((await run(out)).code).toBe(0);
    expect(readdirSync(join(dir, 'replace'))).toEqual(['out.safetensors']);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    await writeFileSafely(out, new Uint8Array([1, 2]));
    expect([...readFileSync(out)]).toEqual([1, 2]);
    const nowhere = join(dir, 'no-such-folder', 'out.safetensors');
    expect((await run(nowhere)).err).toContain(
      `cannot write ${nowhere}: the folder ${join(dir, 'no-such-folder')} does not exist`,
    );
  });
});

describe('compile writes all files or none', () => {
  it('a directory in the way of one file: nothing written, nothing left behind', async () => {
    const dir = scratch();
    mkdirSync(join(dir, 'ttt_linear.wgsl'));
    writeFileSync(join(dir, 'ttt_linear.ir.txt'), 'old');
    const r = await tttc('compile', spec, '--target', 'ir,wgsl', '--out', dir);
    expect(r.code).toBe(1);
    expect(r.err).toContain('is a directory');
    expect(readdirSync(dir).sort()).toEqual(['ttt_linear.ir.txt', 'ttt_linear.wgsl']);
    expect(readFileSync(join(dir, 'ttt_linear.ir.txt'), 'utf8')).toBe('old');
  });

  it('--out that is a file, and a file where a folder must go, are refused', async () => {
    const dir = scratch();
    const file = join(dir, 'file');
    writeFileSync(file, 'x');
    expect((await tttc('compile', spec, '--out', file)).err).toContain(`--out ${file} is not a folder`);
    await expect(
      writeAllOrNone(dir, [
        { path: 'a.txt', contents: 'a' },
        { path: 'file/b.txt', contents: 'b' },
      ]),
    ).rejects.toThrow(`${file} is in the way: it is not a folder`);
    expect(readdirSync(dir)).toEqual(['file']);
  });

  it('a move that fails mid-way puts back what it replaced and removes what it added', async () => {
    const dir = scratch();
    writeFileSync(join(dir, 'a.txt'), 'old a');
    // Each path passes the check, but once 'x' is written as a file, 'x/y' cannot be.
    const files = [
      { path: 'a.txt', contents: 'new a' },
      { path: 'new/b.txt', contents: 'b' },
      { path: 'x', contents: 'x' },
      { path: 'x/y', contents: 'y' },
    ];
    await expect(writeAllOrNone(dir, files)).rejects.toThrow(`${join(dir, 'x')} is in the way: it is not a folder`);
    expect(readdirSync(dir)).toEqual(['a.txt']);
    expect(readFileSync(join(dir, 'a.txt'), 'utf8')).toBe('old a');

    await expect(writeAllOrNone(dir, [{ path: '../x', contents: '' }])).rejects.toThrow('leaves the output folder');
    await expect(
      writeAllOrNone(dir, [
        { path: 'c', contents: '1' },
        { path: './c', contents: '2' },
      ]),
    ).rejects.toThrow('two generated files would both be written to');
    expect(readdirSync(dir)).toEqual(['a.txt']);
  });

  it('repeated targets write each file once', async () => {
    const dir = scratch();
    const r = await tttc('compile', spec, '--target', 'wgsl,ir,wgsl', '--out', dir);
    expect(r.code, r.err).toBe(0);
    expect(readdirSync(dir).sort()).toEqual([
      'ttt_linear.backward.subgroups.wgsl',
      'ttt_linear.backward.wgsl',
      'ttt_linear.checkpoints.subgroups.wgsl',
      'ttt_linear.checkpoints.wgsl',
      'ttt_linear.ir.txt',
      'ttt_linear.subgroups.wgsl',
      'ttt_linear.wgsl',
    ]);
  });
});
