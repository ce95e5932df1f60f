// `npm ci` (CI's install) refuses a lock file that does not resolve every dependency the locked
// packages declare, optional ones included; `npm install` tolerates that silently, so the gap
// only shows on a clean clone. This checks the lock the way `npm ci` does, without the network.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

interface LockedPackage {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const lock = JSON.parse(readFileSync(new URL('../package-lock.json', import.meta.url), 'utf8')) as {
  packages: Record<string, LockedPackage>;
};

/** Where Node's resolution finds `name` from the package at `path` ('' is the root). */
function resolves(path: string, name: string): boolean {
  let dir = path;
  for (;;) {
    if (lock.packages[`${dir ? `${dir}/` : ''}node_modules/${name}`]) return true;
    if (!dir) return false;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up < 0 ? '' : dir.slice(0, up);
  }
}

describe('package-lock.json', () => {
  it('resolves every dependency and optional dependency of every locked package', () => {
    const missing: string[] = [];
    for (const [path, pkg] of Object.entries(lock.packages)) {
      for (const name of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) {
        if (!resolves(path, name)) missing.push(`${path || '(root)'} -> ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
