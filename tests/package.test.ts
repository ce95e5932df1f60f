/**
 * The package as npm users get it: `npm pack`, installed offline into a fresh app, imported from
 * plain Node ESM (the compiler API and the runtime), its command run, and its declarations
 * type-checked by a strict nodenext project. Uses the dist/ that `npm test`'s pretest builds.
 */
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support/specs.ts';

const npm = (args: string[], cwd: string) =>
  execFileSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8' });

function newestSource(dir: string): number {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return latest;
}

/** Every file the module at `entry` loads before any dynamic import: what a page pays for importing it. */
function staticGraph(entry: string): { files: string[]; packages: string[]; source: string } {
  const files = new Set<string>();
  const packages = new Set<string>();
  let source = '';
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    source += text;
    for (const m of text.matchAll(/^(?:import|export)\s(?:[^;]*?\sfrom\s*)?["']([^"']+)["']/gm)) {
      if (m[1].startsWith('.')) visit(resolve(dirname(file), m[1]));
      else packages.add(m[1]);
    }
  };
  visit(entry);
  return { files: [...files], packages: [...packages], source };
}

describe('the npm package', () => {
  const work = mkdtempSync(join(tmpdir(), 'tttc-package-'));
  const app = join(work, 'app');
  let tarball = '';

  beforeAll(() => {
    const built = join(repoRoot, 'dist/cli/main.js');
    const sources = Math.max(
      ...['core', 'api', 'cli', 'compiler', 'runtime', 'targets'].map((d) => newestSource(join(repoRoot, d))),
    );
    if (!existsSync(built) || statSync(built).mtimeMs < sources)
      throw new Error('dist/ is missing or older than the sources: run `npm run build` (npm test does)');
    // --ignore-scripts: prepare would rebuild dist/ while other test files run the command from it.
    const packed = JSON.parse(npm(['pack', '--json', '--ignore-scripts', '--pack-destination', work], repoRoot));
    tarball = join(work, packed[0].filename);
    // The package's dependencies come from this checkout's node_modules, packed: no network.
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8'));
    const deps = Object.keys(pkg.dependencies ?? {}).map((name) => {
      const out = JSON.parse(
        npm(
          ['pack', '--json', '--ignore-scripts', '--pack-destination', work, join(repoRoot, 'node_modules', name)],
          work,
        ),
      );
      return join(work, out[0].filename);
    });
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    npm(['install', '--offline', '--ignore-scripts', tarball, ...deps], app);
    copyFileSync(join(repoRoot, 'examples/ttt_linear.ttt'), join(app, 'ttt_linear.ttt'));
  }, 240_000);

  it('ships the built package, its declarations, README and LICENSE, and no tests or sources', () => {
    const listed = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(listed).toEqual(expect.arrayContaining(['package/LICENSE', 'package/README.md', 'package/bin/tttc.mjs']));
    expect(listed).toEqual(expect.arrayContaining(['package/dist/api/index.js', 'package/dist/api/index.d.ts']));
    expect(listed).toEqual(
      expect.arrayContaining(['package/dist/runtime/index.js', 'package/dist/runtime/index.d.ts']),
    );
    expect(
      listed.filter(
        (f) =>
          /^package\/(tests|bench|scripts|examples|\.ci|node_modules)\//.test(f) ||
          (/\.ts$/.test(f) && !f.endsWith('.d.ts')),
      ),
    ).toEqual([]);
  });

  it('plain Node ESM imports tttc and tttc/runtime and compiles a spec through the API', () => {
    writeFileSync(
      join(app, 'main.mjs'),
      `import { readFileSync } from 'node:fs';
import { check, compile } from 'tttc';
import { readSafetensors, writeSafetensors } from 'tttc/runtime';
const text = readFileSync('ttt_linear.ttt', 'utf8');
const compiled = await compile(text, { file: 'ttt_linear.ttt', targets: ['wgsl', 'cuda', 'ir'], arch: 'sm_80', defines: { D: 32 } });
const checked = check(text, { file: 'ttt_linear.ttt', form: 'primal' });
const broken = await compile(text.replace('layer', 'layr'), { file: 'broken.ttt' });
const bytes = writeSafetensors({ x: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) } });
console.log(JSON.stringify({
  ok: compiled.ok,
  files: compiled.files.map((f) => f.path),
  wgsl: compiled.files.find((f) => f.path.endsWith('.wgsl')).contents.length,
  forms: checked.layer.forms.map((f) => f.form),
  dims: checked.layer.dims,
  broken: { ok: broken.ok, first: broken.diagnostics[0] },
  roundTrip: [...readSafetensors(bytes).get('x').data],
}));
`,
    );
    const r = JSON.parse(execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' }));
    expect(r.ok).toBe(true);
    expect(r.files).toEqual(expect.arrayContaining(['ttt_linear.wgsl', 'ttt_linear.cu']));
    expect(r.wgsl).toBeGreaterThan(1000);
    expect(r.forms.every((f: string) => f === 'primal')).toBe(true);
    expect(r.dims.D).toBe(64);
    expect(r.broken.ok).toBe(false);
    expect(r.broken.first).toMatchObject({
      severity: 'error',
      file: 'broken.ttt',
      line: expect.any(Number),
      column: expect.any(Number),
    });
    expect(r.broken.first.code).toMatch(/^TTT\d{3}$/);
    expect(r.roundTrip).toEqual([1, 2]);
  });

  it('the installed command runs the built JavaScript', () => {
    const bin = join(app, 'node_modules/.bin/tttc');
    expect(execFileSync(bin, ['--version'], { cwd: app, encoding: 'utf8' }).trim()).toMatch(/^tttc \d+\.\d+\.\d+/);
    expect(execFileSync(bin, ['check', 'ttt_linear.ttt'], { cwd: app, encoding: 'utf8' })).toContain('TTTLinear: ok');
  });

  it('a strict nodenext TypeScript project type-checks against the declarations', () => {
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'nodenext',
          target: 'es2022',
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: [],
        },
      }),
    );
    writeFileSync(
      join(app, 'use.ts'),
      `import { check, compile, type CompileOutput, type Diagnostic } from 'tttc';
import { readSafetensors, type SequenceLayer } from 'tttc/runtime';
const out: CompileOutput = await compile('layer X {}', { targets: ['wgsl'], defines: { D: 4 } });
const first: Diagnostic | undefined = out.diagnostics[0];
const line: number | undefined = first?.line;
const dims: Record<string, number> | undefined = check('', { file: 'x.ttt' }).layer?.dims;
// @ts-expect-error: targets are strings
await compile('', { targets: 3 });
export const used = [line, dims, readSafetensors, null as SequenceLayer | null];
`,
    );
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', app], { cwd: app, encoding: 'utf8' });
  });

  it('the runtime entry loads no Node module and no package before it is asked for a device', () => {
    const graph = staticGraph(join(app, 'node_modules/tttc/dist/runtime/index.js'));
    expect(graph.packages).toEqual([]);
    expect(graph.source).not.toMatch(/createRequire|\brequire\(/);
  });
});
