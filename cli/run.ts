/** `tttc run`: the inner loop over a safetensors file of inputs, on a chosen backend. */
import { InputError, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { namedF64, toSafeTensors } from '../runtime/named-tensors.ts';
import { checkOutputPath } from '../runtime/safe-write.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { signatureOf } from '../runtime/signature.ts';
import { type ParsedArgs, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';
import { BACKENDS } from './backends.ts';
import { phases } from './progress.ts';

export async function runCommand(a: ParsedArgs, io: CliIO): Promise<number> {
  const inputs = a.options.get('inputs');
  const out = a.options.get('out');
  if (!inputs) throw new UsageError('missing --inputs IN.safetensors');
  if (!out) throw new UsageError('missing --out OUT.safetensors');
  const backendName = a.options.get('backend') ?? 'reference';
  const backend = BACKENDS.get(backendName);
  if (!backend) throw new UsageError(`unknown backend '${backendName}'; backends: ${[...BACKENDS.keys()].join(', ')}`);
  const c = loadSpec(a.positional[0], a.defines, a.options.get('form'), io);
  if (!c) return 1;
  // Refused before the work rather than after it.
  await checkOutputPath(out, [c.file, inputs]);
  const progress = phases(io, a.flags.has('verbose'));
  let named;
  try {
    named = innerLoopInputs(
      signatureOf(c),
      namedF64(await progress.time('read inputs', () => readSafetensorsFile(inputs))),
    );
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`error TTT502: ${inputs}: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const started = performance.now();
  const result = await progress.time(`set-up and run (${backendName})`, () => backend.run(c, named));
  const ms = performance.now() - started;
  await progress.time('write', () =>
    writeSafetensorsFile(
      out,
      toSafeTensors(innerLoopOutputTensors(result), backend.dtype),
      { backend: backendName, spec: c.file },
      { inputs: [c.file, inputs] },
    ),
  );
  io.out(
    `${c.layer.name}: ${named.B}×${named.H} sequences of ${named.T} tokens on ${backendName} in ${ms.toFixed(1)} ms; wrote ${out}`,
  );
  return 0;
}
