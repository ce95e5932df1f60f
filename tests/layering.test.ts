/** The runtime stands on core/ alone: nothing under runtime/ imports the compiler or the targets. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './support/specs.ts';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every module specifier of a file: static imports and exports, and dynamic `import(...)`. */
function specifiers(text: string): string[] {
  const found: string[] = [];
  for (const m of text.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) found.push(m[1]);
  return found;
}

describe('layering', () => {
  it('runtime/ imports nothing from compiler/, targets/ or cli/', () => {
    const offending: string[] = [];
    for (const file of sources(join(repoRoot, 'runtime'))) {
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const top = relative(repoRoot, resolve(dirname(file), spec)).split(/[\\/]/)[0];
        if (top !== 'runtime' && top !== 'core') offending.push(`${relative(repoRoot, file)} imports ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it('core/ imports only core/', () => {
    const offending: string[] = [];
    for (const file of sources(join(repoRoot, 'core'))) {
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        if (spec.startsWith('.') && relative(repoRoot, resolve(dirname(file), spec)).split(/[\\/]/)[0] !== 'core')
          offending.push(`${relative(repoRoot, file)} imports ${spec}`);
      }
    }
    expect(offending).toEqual([]);
  });
});
