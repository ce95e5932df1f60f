/** Generated TypeScript, formatted as this repository formats its own code. */
import { fileURLToPath } from 'node:url';
import prettier from 'prettier';

export async function formatTypeScript(text: string): Promise<string> {
  // The settings are looked up from this file, not from where tttc runs: the same spec always
  // generates the same text.
  const settings = await prettier.resolveConfig(fileURLToPath(import.meta.url), { editorconfig: false });
  return prettier.format(text, { ...settings, parser: 'typescript' });
}
