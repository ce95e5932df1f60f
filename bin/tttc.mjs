#!/usr/bin/env node
// The installed command: the built JavaScript in dist/ (`npm run build`, run by npm on install).
let cli;
try {
  cli = await import('../dist/cli/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes('dist/cli/main.js')) throw error;
  process.stderr.write('tttc: dist/ is missing; run `npm run build` in the tttc checkout first.\n');
  process.exit(1);
}
process.exitCode = await cli.main(process.argv.slice(2));
