/** Every code-generation target, by the name `tttc compile --target` takes. */
import { irTarget } from './ir/emit.ts';
import type { Target } from './target.ts';

export const TARGETS: ReadonlyMap<string, Target> = new Map([irTarget].map((t) => [t.name, t]));
