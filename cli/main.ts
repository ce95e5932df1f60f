/** `tttc`: the command line. Every command takes `--help`; exit 0 on success, 1 on errors, 2 on bad usage. */
import { OptionError } from '../api/options.ts';
import { type ArgSpec, parseArgs, type ParsedArgs, UsageError } from './args.ts';
import { type CliIO, processIO } from './io.ts';

const COMMON = `  -D NAME=VALUE      override a dim or the minibatch size (repeatable), e.g. -D D=128 -D K=32
  --form FORM        auto (default: dual form where a state allows it), dual, or primal
  -h, --help         show this help`;

type CommandRun = (a: ParsedArgs, io: CliIO) => number | Promise<number>;

interface Command extends ArgSpec {
  summary: string;
  usage: string;
  /** The command's code, imported only when the command runs: `tttc check` never loads a backend. */
  load(): Promise<CommandRun>;
}

// Each command is one entry: its options, its help, and where its code lives.
export const COMMANDS: Record<string, Command> = {
  check: {
    summary: 'check a spec and summarise it: dims, state, params, views, the form chosen per state',
    usage: `tttc check FILE [options]

  --json             print the summary and diagnostics as JSON
${COMMON}`,
    valued: ['form'],
    flags: ['json'],
    positional: 1,
    load: () => import('./commands.ts').then((m) => m.checkCommand),
  },
  grad: {
    summary: 'print the derived per-token gradient program',
    usage: `tttc grad FILE [options]\n\n${COMMON}`,
    valued: ['form'],
    flags: [],
    positional: 1,
    load: () => import('./commands.ts').then((m) => m.gradCommand),
  },
  compile: {
    summary: 'generate code for one or more targets',
    usage: `tttc compile FILE --target T[,T...] --out DIR [options]

  --target LIST      comma list of targets: ir, wgsl, cuda, ts (default ir)
  --out DIR          output folder (default build); every file is written or none
  --arch ARCH        CUDA architecture: sm_80 or sm_90 (default sm_90)
  --dtype DTYPE      matmul operands (CUDA; f32 state and accumulation): f32 (default), bf16
                     (rounded; tensor cores where a product fits), or tf32x3 (tensor cores at
                     f32's accuracy: operands split into two tf32 parts, three mma per step)
  --io IO            global I/O: f32 (default) or bf16 (CUDA: views and output stored as bf16,
                     states, params, rates and arithmetic f32; refused with wgsl and ts)
  --threads N        CUDA threads per block of the prefill and training kernels: 32, 64, 128 or
                     256 (default: chosen by the scheduler from the sizes)
  --report           with cuda among the targets: each kernel's threads, shared memory, blocks per
                     SM and barriers per mini-batch, read back from the generated code; with nvcc
                     on PATH also its registers, spills and tensor-core instructions
  --json             print the files written and the diagnostics (and the report) as JSON
${COMMON}`,
    valued: ['form', 'target', 'out', 'arch', 'dtype', 'io', 'threads'],
    flags: ['json', 'report'],
    positional: 1,
    load: () => import('./commands.ts').then((m) => m.compileCommand),
  },
  run: {
    summary: 'run the inner loop over inputs in a safetensors file, and its backward with --cotangents',
    usage: `tttc run FILE --inputs IN.safetensors --out OUT.safetensors [--cotangents CT.safetensors] [options]

  --inputs FILE      views by name ([B, H, T, ...]), lr [B, H, T], scale [K], param.NAME [H, ...],
                     state.NAME [B, H, ...] or [H, ...], optional accum.NAME [B, H, ...] and start
  --out FILE         writes output [B, H, T, ...], state.NAME and accum.NAME [B, H, ...]
  --cotangents FILE  cotangents of the outputs: output [B, H, T, ...] (required), optional
                     state.NAME and accum.NAME [B, H, ...]; --out then also holds grad.NAME,
                     shaped like NAME, for every differentiable input (reference backend)
  --backend NAME     reference (f64 on the CPU, default), webgpu (f32), or cuda-cpu (the generated
                     CUDA built as host C++ and run on the CPU)
  --arch ARCH        cuda-cpu: the CUDA architecture to generate for and emulate (default sm_90)
  --dtype DTYPE      cuda-cpu: matmul operands, f32 (default), bf16 or tf32x3
  --io IO            cuda-cpu: global I/O, f32 (default) or bf16 (views and the output's cotangent
                     rounded to bf16 as they are stored; output and view gradients rounded to bf16)
  --threads N        cuda-cpu: threads per block, as tttc compile --threads takes them
  --verbose          print phase timings on stderr (always on a terminal)
${COMMON}`,
    valued: ['form', 'inputs', 'out', 'backend', 'cotangents', 'arch', 'dtype', 'io', 'threads'],
    flags: ['verbose'],
    positional: 1,
    load: () => import('./run.ts').then((m) => m.runCommand),
  },
  layer: {
    summary: 'run the whole sequence layer (projections, RoPE, inner loop, norm, gate) from safetensors weights',
    usage: `tttc layer FILE --weights W.safetensors --input X.safetensors --out Y.safetensors [options]

  --weights FILE     the layer's weights under the PyTorch names (q_proj.weight, ..., W1, b1;
                     an update rule's gates rule.decay.weight, rule.lr.W1.bias, ...);
                     sizes from its __metadata__ (heads, width, ttt_base_lr, use_gate, rope_theta)
                     or its shapes
  --prefix P         prefix of every weight name, e.g. weights.
  --input FILE       hidden_states [B, T, C]
  --input-name NAME  the input tensor's name (default hidden_states)
  --out FILE         writes output [B, T, C]
  --decode           run the tokens one at a time through the decode cache (default: one prefill)
  --backend NAME     reference (f64 on the CPU, default) or webgpu (f32)
  --base-lr R        the inner learning rate's base, when the weights' metadata has no ttt_base_lr
  --verbose          print phase timings on stderr (always on a terminal)
${COMMON}`,
    valued: ['form', 'weights', 'prefix', 'input', 'input-name', 'out', 'backend', 'base-lr'],
    flags: ['decode', 'verbose'],
    positional: 1,
    load: () => import('./layer.ts').then((m) => m.layerCommand),
  },
  'example-inputs': {
    summary: "write random inputs (and, with --weights, a whole layer's weights) for a spec",
    usage: `tttc example-inputs FILE --out IN.safetensors [options]

  --out FILE         writes what \`tttc run --inputs\` reads: views, lr, scale, params, states
  --batch B          sequences per batch (default 1)
  --heads H          heads (default 2)
  --tokens T         tokens per sequence (default: two mini-batches)
  --seed N           random seed (default 1)
  --weights FILE     also write weights for \`tttc layer --weights\` (and --hidden for its input)
  --hidden FILE      writes hidden_states [B, T, heads × D] for \`tttc layer --input\`
  --cotangents FILE  writes a random cotangent of the output for \`tttc run --cotangents\`
${COMMON}`,
    valued: ['form', 'out', 'batch', 'heads', 'tokens', 'seed', 'weights', 'hidden', 'cotangents'],
    flags: [],
    positional: 1,
    load: () => import('./example-inputs.ts').then((m) => m.exampleInputsCommand),
  },
};

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'tttc: a compiler for Test-Time-Training layers',
    '',
    'usage: tttc COMMAND FILE [options]',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    "Run `tttc help COMMAND` (or `tttc COMMAND --help`) for a command's options; `tttc --version` for the version.",
  ].join('\n');
}

async function version(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  // The sources run from cli/, the built package from dist/cli/: look one and two folders up.
  for (const up of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(await readFile(new URL(up, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'tttc' && pkg.version) return pkg.version;
    } catch {
      // not this folder
    }
  }
  return 'unknown';
}

export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    io.out(`tttc ${await version()}`);
    return 0;
  }
  if (name === 'help' && rest.length > 0) {
    const topic = COMMANDS[rest[0]];
    if (!topic || rest.length > 1) {
      io.err(`tttc help: unknown command '${rest.join(' ')}'\n\n${overview()}`);
      return 2;
    }
    io.out(`usage: ${topic.usage}`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview());
    return name ? 0 : 2;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!command) {
    io.err(`tttc: unknown command '${name}'\n\n${overview()}`);
    return 2;
  }
  try {
    const args = parseArgs(rest, { ...command, flags: ['help', ...command.flags] });
    if (args.flags.has('help')) {
      io.out(`usage: ${command.usage}`);
      return 0;
    }
    return await (
      await command.load()
    )(args, io);
  } catch (e) {
    if (e instanceof UsageError || e instanceof OptionError) {
      io.err(`tttc ${name}: error TTT501: ${e.message}\nusage: ${command.usage.split('\n')[0]}`);
      return 2;
    }
    const message = e instanceof Error ? e.message : String(e);
    io.err(`tttc ${name}: error: ${message}`);
    return 1;
  }
}
