/**
 * Runs tests/browser/entry.ts in headless Chromium: bundles it with esbuild, serves it from
 * 127.0.0.1 (WebGPU needs a secure context, which a data: or file: URL is not), and drives the
 * system Chromium with playwright-core, which downloads no browser of its own.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { type Browser, chromium, type Page } from 'playwright-core';
import type { BrowserRunRequest, BrowserRunResult } from './entry.ts';

export const CHROMIUM = '/usr/bin/chromium';

/**
 * Without --enable-unsafe-webgpu, requestAdapter() returns null here (SwiftShader is blocklisted);
 * the other GPU flags ask for SwiftShader's Vulkan even where a GPU exists, so results do not depend
 * on the machine, and the rest keep the browser off the network.
 */
export const CHROMIUM_FLAGS = [
  '--headless=new',
  '--no-sandbox',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--disable-gpu-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

/**
 * device.ts imports these only on its Node path; a page never gets there (it has navigator.gpu),
 * so they stay out of the bundle. Any other Node-only import fails the build, as it should.
 */
const nodeOnly: Plugin = {
  name: 'node-only',
  setup(b) {
    b.onResolve({ filter: /^webgpu$|\/software-vulkan\.ts$/ }, (args) => ({ path: args.path, external: true }));
  },
};

export class BrowserHarness {
  private constructor(
    private readonly dir: string,
    private readonly server: Server,
    private readonly browser: Browser,
    private readonly page: Page,
    /** The page's console errors and uncaught exceptions, for failure messages. */
    readonly pageErrors: string[],
  ) {}

  static async start(): Promise<BrowserHarness> {
    if (!existsSync(CHROMIUM))
      throw new Error(`Chromium not found at ${CHROMIUM}; install it (Debian: apt-get install chromium)`);
    const dir = mkdtempSync(join(tmpdir(), 'tttc-browser-'));
    let server: Server | undefined;
    let browser: Browser | undefined;
    try {
      await build({
        entryPoints: [join(import.meta.dirname, 'entry.ts')],
        outfile: join(dir, 'site', 'entry.js'),
        bundle: true,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        plugins: [nodeOnly],
        logLevel: 'silent',
      });
      server = await serve(join(dir, 'site'));
      browser = await launchChromium(join(dir, 'profile'));
      const page = await browser.newPage();
      const pageErrors: string[] = [];
      page.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      return new BrowserHarness(dir, server, browser, page, pageErrors);
    } catch (error) {
      await close(dir, server, browser);
      throw error;
    }
  }

  async run(request: BrowserRunRequest): Promise<BrowserRunResult> {
    try {
      return await this.page.evaluate((r) => window.runInnerLoop(r), request);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new Error(
        `The inner loop failed in Chromium (${CHROMIUM}): ${message}\n` +
          `Page errors: ${JSON.stringify(this.pageErrors)}\n` +
          "WebGPU there runs on Chromium's SwiftShader; Debian's package ships it: apt-get install chromium",
      );
    }
  }

  close(): Promise<void> {
    return close(this.dir, this.server, this.browser);
  }
}

async function close(dir: string, server?: Server, browser?: Browser): Promise<void> {
  await browser?.close();
  if (server) await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
}

// The empty icon keeps Chromium from fetching /favicon.ico, whose 404 would log a console error.
const PAGE =
  '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="/entry.js"></script>';

/** A static server for the page and its bundle on a random port of 127.0.0.1. */
/** Debian's Chromium with WebGPU on SwiftShader and a fresh profile in `profileDir`. */
export function launchChromium(profileDir: string): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    // Our flags only: Playwright's defaults carry their own --enable-features, which would replace ours.
    ignoreDefaultArgs: true,
    args: [...CHROMIUM_FLAGS, `--user-data-dir=${profileDir}`, '--remote-debugging-pipe', '--no-startup-window'],
  });
}

async function serve(site: string): Promise<Server> {
  const server = createServer(async (req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
    } else if (req.url === '/entry.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(await readFile(join(site, 'entry.js')));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  return server;
}
