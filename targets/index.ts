/** Every code-generation target, by the name `tttc compile --target` takes. */
import { cudaTarget } from './cuda/target.ts';
import { irTarget } from './ir/emit.ts';
import { tsTarget } from './ts/emit.ts';
import { wgslTarget } from './wgsl/render.ts';
import type { Target } from './target.ts';

export const TARGETS: ReadonlyMap<string, Target> = new Map(
  [irTarget, wgslTarget, cudaTarget, tsTarget].map((t) => [t.name, t]),
);
