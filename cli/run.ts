/** `tttc run`: the inner loop over a safetensors file of inputs, on a chosen backend. */
import { InputError, innerLoopInputs, innerLoopOutputTensors } from '../runtime/inner-loop.ts';
import { namedF64, toSafeTensors } from '../runtime/named-tensors.ts';
import { readSafetensorsFile, writeSafetensorsFile } from '../runtime/safetensors.ts';
import { type ParsedArgs, UsageError } from './args.ts';
import type { CliIO } from './io.ts';
import { loadSpec } from './load.ts';
import { BACKENDS } from './backends.ts';

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
  let named;
  try {
    named = innerLoopInputs(c.signature, namedF64(await readSafetensorsFile(inputs)));
  } catch (e) {
    if (e instanceof InputError) {
      io.err(`error TTT502: ${inputs}: ${e.message}`);
      return 1;
    }
    throw e;
  }
  const started = performance.now();
  const result = await backend.run(c, named);
  const ms = performance.now() - started;
  await writeSafetensorsFile(out, toSafeTensors(innerLoopOutputTensors(result), backend.dtype), {
    backend: backendName,
    spec: c.file,
  });
  io.out(
    `${c.layer.name}: ${named.B}×${named.H} sequences of ${named.T} tokens on ${backendName} in ${ms.toFixed(1)} ms; wrote ${out}`,
  );
  return 0;
}
