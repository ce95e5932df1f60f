/** `tttc`: the command line. Every command takes `--help`; exit 0 on success, 1 on errors, 2 on bad usage. */
import { CompileError, formatDiagnostics } from '../compiler/diagnostics/diagnostic.ts';
import { parseArgs, type ParsedArgs, UsageError } from './args.ts';
import { checkCommand, compileCommand, gradCommand } from './commands.ts';
import { type CliIO, processIO } from './io.ts';
import { LAYER_FLAGS, LAYER_USAGE, LAYER_VALUED, layerCommand } from './layer.ts';
import { runCommand } from './run.ts';

const COMMON = `  -D NAME=VALUE      override a dim or the minibatch size (repeatable), e.g. -D D=128 -D K=32
  --form FORM        auto (default: dual form where a state allows it), dual, or primal
  -h, --help         show this help`;

interface Command {
  summary: string;
  usage: string;
  valued: string[];
  flags?: string[];
  run(a: ParsedArgs, io: CliIO): number | Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  check: {
    summary: 'check a spec and summarise it: dims, state, params, views, the form chosen per state',
    usage: `tttc check FILE [options]\n\n${COMMON}`,
    valued: ['form'],
    run: checkCommand,
  },
  grad: {
    summary: 'print the derived per-token gradient program',
    usage: `tttc grad FILE [options]\n\n${COMMON}`,
    valued: ['form'],
    run: gradCommand,
  },
  compile: {
    summary: 'generate code for one or more targets',
    usage: `tttc compile FILE --target T[,T...] --out DIR [options]

  --target LIST      comma list of targets: ir, wgsl, cuda, ts (default ir)
  --out DIR          output folder (default build)
  --arch ARCH        CUDA architecture: sm_80 or sm_90 (default sm_90)
  --dtype DTYPE      matmul operands: f32 (default) or bf16 (CUDA; f32 state and accumulation)
${COMMON}`,
    valued: ['form', 'target', 'out', 'arch', 'dtype'],
    run: compileCommand,
  },
  run: {
    summary: 'run the inner loop over inputs in a safetensors file',
    usage: `tttc run FILE --inputs IN.safetensors --out OUT.safetensors [options]

  --inputs FILE      views by name ([B, H, T, ...]), lr [B, H, T], scale [K], param.NAME [H, ...],
                     state.NAME [B, H, ...] or [H, ...], optional accum.NAME [B, H, ...] and start
  --out FILE         writes output [B, H, T, ...], state.NAME and accum.NAME [B, H, ...]
  --backend NAME     reference (f64 on the CPU, default), webgpu (f32), or cuda-cpu (the generated
                     CUDA built as host C++ and run on the CPU)
  --arch ARCH        cuda-cpu: the CUDA architecture to generate for and emulate (default sm_90)
  --dtype DTYPE      cuda-cpu: matmul operands, f32 (default) or bf16
${COMMON}`,
    valued: ['form', 'inputs', 'out', 'backend', 'arch', 'dtype'],
    run: runCommand,
  },
  layer: {
    summary: 'run the whole sequence layer (projections, RoPE, inner loop, norm, gate) from safetensors weights',
    usage: `${LAYER_USAGE}\n${COMMON}`,
    valued: LAYER_VALUED,
    flags: LAYER_FLAGS,
    run: layerCommand,
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
    "Run `tttc COMMAND --help` for a command's options.",
  ].join('\n');
}

export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(overview());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`tttc: unknown command '${name}'\n\n${overview()}`);
    return 2;
  }
  try {
    const args = parseArgs(rest, command.valued, ['help', ...(command.flags ?? [])]);
    if (args.flags.has('help')) {
      io.out(`usage: ${command.usage}`);
      return 0;
    }
    return await command.run(args, io);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`tttc ${name}: error TTT501: ${e.message}\nusage: ${command.usage.split('\n')[0]}`);
      return 2;
    }
    if (e instanceof CompileError) {
      io.err(formatDiagnostics(e.diagnostics, ''));
      return 1;
    }
    const message = e instanceof Error ? e.message : String(e);
    io.err(`tttc ${name}: error: ${message}`);
    return 1;
  }
}
