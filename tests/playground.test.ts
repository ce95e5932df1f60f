// The playground (playground/): its adapter's loss trace against an independent computation, then
// the built page end to end in headless Chromium with WebGPU on SwiftShader: live diagnostics,
// the WGSL panel, a run of the default spec with its charts, and a shared link.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syntheticSequence } from '../playground/src/synthetic.ts';
import { analyse } from '../playground/src/tttc.ts';
import { CHROMIUM, launchChromium } from './browser/harness.ts';
import { UNUSUAL_SPECS } from './specs/unusual.ts';
import { exampleFiles, repoRoot } from './support/specs.ts';

/** The f32 kernels' tolerance against the f64 reference (relative error), as in browser.test.ts. */
const TOL = 1e-5;
/** The sizes the page runs the default spec at. */
const SIZES = { D: 16, K: 8 };

describe('the playground adapter', () => {
  // These specs read out f(q) and learn 0.5‖f(k) − v‖²: with q = k (no noise), the loss after a
  // token's update is 0.5‖output − v‖², computed here from the reference executor's output.
  for (const spec of ['delta_rule.ttt', 'ttt_linear.ttt', 'weightnorm_linear.ttt', 'ttt_mlp.ttt']) {
    it(`${spec}: the loss after each update matches the reference output (scales vary by position)`, async () => {
      const text = readFileSync(join(repoRoot, 'examples', spec), 'utf8');
      const { layer } = analyse(text, { file: spec, dims: { D: 8, K: 4 }, form: 'auto' });
      if (!layer) throw new Error(`${spec} did not compile`);
      const options = { B: 2, H: 2, T: 11, seed: 5, map: 'nonlinear' as const, noise: 0, lr: 0.05 };
      const named = syntheticSequence(layer.summary, options);
      if (named.has('scale')) named.set('scale', { shape: [4], data: Float64Array.of(0.3, 0.5, 0.7, 0.9) });
      const inp = layer.inputs(named);
      const trace = await layer.lossTrace(inp);
      const output = layer.reference(inp).output.data;
      const v = named.get('v')!.data;
      const D = 8;
      for (let row = 0; row < 2 * 2 * 11; row++) {
        let loss = 0;
        for (let j = 0; j < D; j++) loss += 0.5 * (output[row * D + j] - v[row * D + j]) ** 2;
        expect(Math.abs(trace.after[row] - loss) / loss, `row ${row}`).toBeLessThan(1e-12);
      }
      // The loss before token t is the loss at the state after token t − 1, so they differ.
      expect(trace.before.some((b, i) => Math.abs(b - trace.after[i]) > 1e-9)).toBe(true);
    });
  }
});

describe('the playground on every example and unusual spec', () => {
  const specs = [
    ...exampleFiles.map((f): [string, string] => [f, readFileSync(join(repoRoot, 'examples', f), 'utf8')]),
    ...Object.entries(UNUSUAL_SPECS),
    [
      'a loss that reads no view',
      'layer NoView { dim D = 4; minibatch K = 2; state W: [D, D]\n' +
        '  loss() = sum(square(W)); output(q: [D]) = q @ W; update sgd(lr: 0.1, scale: none) }',
    ],
  ];
  for (const [name, text] of specs) {
    it(`${name}: panels, synthetic inputs and a finite loss trace`, async () => {
      const { layer, diagnostics } = analyse(text, { file: 'spec.ttt', dims: {}, form: 'auto' });
      if (!layer) throw new Error(JSON.stringify(diagnostics));
      // Small sizes, where the spec declares them.
      const small = Object.fromEntries(layer.summary.sizes.map((s) => [s.name, Math.min(s.value, 8)]));
      const sized = analyse(text, { file: 'spec.ttt', dims: small, form: 'auto' }).layer ?? layer;
      expect(sized.wgsl().text).toContain('@compute');
      expect(sized.cuda()[0].text).toContain('__global__');
      expect(sized.gradient().text).toContain('return loss');
      const named = syntheticSequence(sized.summary, {
        B: 1,
        H: 2,
        T: 7,
        seed: 2,
        map: 'nonlinear',
        noise: 0.1,
        lr: 0.05,
      });
      const inp = sized.inputs(named);
      const trace = await sized.lossTrace(inp);
      expect([...trace.before, ...trace.after].every(Number.isFinite)).toBe(true);
      expect(sized.reference(inp).output.data.every(Number.isFinite)).toBe(true);
    });
  }
});

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
};

/** The built page's files on a random port of 127.0.0.1 (WebGPU needs a secure context). */
async function serve(root: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(
      /^(\.\.[/\\])+/,
      '',
    );
    const file = join(root, path.endsWith('/') ? `${path}index.html` : path);
    try {
      res
        .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
        .end(await readFile(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return server;
}

describe('the playground page in headless Chromium', () => {
  let dir: string;
  let server: Server | undefined;
  let browser: Browser | undefined;
  let url: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`Chromium not found at ${CHROMIUM}; install it (Debian: apt-get install chromium)`);
    dir = mkdtempSync(join(tmpdir(), 'tttc-playground-'));
    await build({
      configFile: join(repoRoot, 'playground', 'vite.config.ts'),
      build: { outDir: join(dir, 'site') },
      logLevel: 'silent',
    });
    server = await serve(join(dir, 'site'));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/index.html`;
    browser = await launchChromium(join(dir, 'profile'));
  });

  afterAll(async () => {
    await browser?.close();
    if (server) await new Promise((resolve) => server!.close(resolve));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function open(
    address: string,
    options: { noWebGPU?: boolean } = {},
  ): Promise<{ page: Page; errors: string[] }> {
    const page = await browser!.newPage({ viewport: { width: 1500, height: 950 } });
    // As in a browser without WebGPU.
    if (options.noWebGPU)
      await page.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined }));
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(address);
    return { page, errors };
  }

  it('shows diagnostics live, the WGSL kernel, runs the default spec with charts, and shares a link', async () => {
    const loaded = performance.now();
    const { page, errors } = await open(url);
    await page.locator('#problems li.ok').waitFor();

    // Into an error and back: the squiggle and the listed diagnostic appear, then clear.
    await page.locator('#editor .cm-content').click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\nstate');
    const problem = page.locator('#problems li[data-code="TTT104"]');
    await problem.waitFor();
    expect(await problem.textContent()).toContain('hint:');
    await page.locator('#editor .cm-lintRange-error').first().waitFor();
    for (let i = 0; i < 6; i++) await page.keyboard.press('Backspace');
    await page.locator('#problems li.ok').waitFor();
    expect(await page.locator('#editor .cm-lintRange-error').count()).toBe(0);

    // What `tttc check` says, and the CUDA kernel.
    expect(await page.locator('#panel-check').textContent()).toContain('W1       dual-matmul');
    await page.locator('#tabs button[data-tab="cuda"]').click();
    await expect.poll(() => page.locator('#panel-cuda .cm-content').textContent()).toContain('__global__');

    // The WGSL panel shows the kernel, with the spec lines its stages come from.
    await page.locator('#tabs button[data-tab="wgsl"]').click();
    const wgsl = page.locator('#panel-wgsl .cm-content');
    await expect.poll(() => wgsl.textContent()).toContain('@compute @workgroup_size');
    expect(await wgsl.textContent()).toContain('fn main(');
    // CodeMirror draws the gutter of the lines near the view only: scroll down until a stage from
    // spec line 12 is drawn (how far down it starts depends on the kernel's preamble).
    const spec12 = page.locator('#panel-wgsl .spec-lines .cm-gutterElement', { hasText: 'spec 12' });
    const scroller = page.locator('#panel-wgsl .cm-scroller');
    for (let screens = 0; screens < 50 && (await spec12.count()) === 0; screens++) {
      await scroller.evaluate((el) => el.scrollBy(0, el.clientHeight));
      await page.waitForTimeout(50);
    }
    expect(await spec12.count()).toBeGreaterThan(0);

    // Run the default spec on WebGPU (SwiftShader here), at sizes set like `-D D=16 -D K=8`:
    // SwiftShader takes about 25 s to build the kernels at the spec's own D=64, K=16.
    for (const [name, value] of Object.entries(SIZES)) {
      const input = page.locator(`#sizes input[name="${name}"]`);
      await input.fill(String(value));
      await input.dispatchEvent('change');
      await expect.poll(() => page.locator(`#sizes input[name="${name}"]`).inputValue()).toBe(String(value));
    }
    await page.locator('#tabs button[data-tab="run"]').click();
    await page.locator('#run-options input[name="T"]').fill('40');
    await page.locator('#run').click();
    const panel = page.locator('#panel-run');
    await expect.poll(() => panel.getAttribute('data-state'), { timeout: 50_000 }).toMatch(/done|failed/);
    const status = await page.locator('#run-status').textContent();
    expect(await panel.getAttribute('data-state'), status ?? '').toBe('done');
    const firstRun = performance.now() - loaded;
    console.log(`playground: load to first run ${(firstRun / 1000).toFixed(1)} s\n${status}`);
    const T = Number(await page.locator('#run-options input[name="T"]').inputValue());
    for (const series of ['before its update', 'after its update'])
      expect(await page.locator(`#chart-loss path[data-series="${series}"]`).getAttribute('data-points')).toBe(
        String(T),
      );
    expect(Number(await page.locator('#chart-error path').first().getAttribute('data-points'))).toBe(T);
    expect(Number(await page.locator('#chart-time path').first().getAttribute('data-points'))).toBe(T);
    expect(Number(await panel.getAttribute('data-max-error'))).toBeLessThan(TOL);
    mkdirSync(join(repoRoot, 'build'), { recursive: true });
    await page.screenshot({ path: join(repoRoot, 'build', 'playground.png') });

    // A shared link reproduces the spec and the -D overrides.
    await page.locator('#share').click();
    await expect.poll(() => page.evaluate(() => location.hash)).toMatch(/^#s=/);
    const link = page.url();
    const spec = await page.locator('#editor .cm-content').textContent();
    // Opened in a browser without WebGPU: the link still works, the page says why kernels cannot
    // run, and a run still plots the inner loss from the f64 reference.
    const shared = await open(link, { noWebGPU: true });
    await shared.page.locator('#problems li.ok').waitFor();
    await shared.page.locator('#tabs button[data-tab="run"]').click();
    await expect.poll(() => shared.page.locator('#run-status').textContent()).toContain('WebGPU is not available');
    await shared.page.locator('#run').click();
    await expect.poll(() => shared.page.locator('#panel-run').getAttribute('data-state')).toBe('done');
    expect(
      await shared.page.locator('#chart-loss path[data-series="after its update"]').getAttribute('data-points'),
    ).toBe(String(T));
    expect(await shared.page.locator('#chart-error path').count()).toBe(0);
    for (const [name, value] of Object.entries(SIZES))
      expect(await shared.page.locator(`#sizes input[name="${name}"]`).inputValue()).toBe(String(value));
    expect(await shared.page.locator('#editor .cm-content').textContent()).toBe(spec);
    expect([...errors, ...shared.errors], 'page errors').toEqual([]);
  });
});
