/**
 * The `ts` target: one TypeScript module per spec exporting a class named after the layer, with
 * the WGSL kernel embedded, so that `import { TTTLinear } from './gen/ttt_linear.js'` is all a
 * user writes (README.md, "Generated TypeScript modules").
 */
import { stem, type Target } from '../target.ts';
import { formatTypeScript } from './format.ts';
import { buildModule } from './module.ts';

export const tsTarget: Target = {
  name: 'ts',
  description: 'a typed TypeScript module: the layer as a class on WebGPU, its WGSL kernel embedded',
  async emit(compiled) {
    const moduleName = stem(compiled);
    const contents = await formatTypeScript(buildModule(compiled, moduleName));
    return [{ path: `${moduleName}.ts`, contents }];
  },
};
