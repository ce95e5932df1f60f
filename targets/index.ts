/**
 * Every code-generation target, by the name `tttc compile --target` takes. Each is imported only
 * when asked for: the TypeScript target alone pulls in ts-morph, prettier and TypeScript.
 */
import type { Target } from './target.ts';

const LOADERS: ReadonlyMap<string, () => Promise<Target>> = new Map([
  ['ir', () => import('./ir/emit.ts').then((m) => m.irTarget)],
  ['wgsl', () => import('./wgsl/target.ts').then((m) => m.wgslTarget)],
  ['cuda', () => import('./cuda/target.ts').then((m) => m.cudaTarget)],
  ['ts', () => import('./ts/emit.ts').then((m) => m.tsTarget, needsToolchain)],
]);

/** ts-morph and prettier are optional peer dependencies: only the ts target needs them. */
function needsToolchain(error: unknown): never {
  if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND')
    throw new Error(
      `the ts target needs ts-morph and prettier: npm install ts-morph prettier (${(error as Error).message})`,
    );
  throw error;
}

export const TARGET_NAMES: readonly string[] = [...LOADERS.keys()];

export function loadTarget(name: string): Promise<Target> {
  const load = LOADERS.get(name);
  if (!load) throw new Error(`unknown target '${name}'; targets: ${TARGET_NAMES.join(', ')}`);
  return load();
}
