/**
 * Prints an IR program as a Python function of torch ops, batched over a leading axis: every
 * input arrives as [N, ...shape] (N sequence-heads side by side) and every output leaves so. A
 * node that depends on no input (a constant, the causal mask, what is built from them) stays
 * unbatched and reaches the batched ones by broadcasting, which lines up from the right as the
 * IR's own shapes do. Values are deleted after their last use, so a long program (a derived
 * backward) holds only what is still live.
 */
import type { Node, Program } from '../../compiler/ir/ir.ts';
import { stringText } from '../text.ts';

/** A Python float literal for a constant. */
export function pythonFloat(v: number): string {
  if (Number.isNaN(v)) return 'math.nan';
  if (!Number.isFinite(v)) return v > 0 ? 'math.inf' : '-math.inf';
  if (Object.is(v, -0)) return '-0.0';
  const s = String(v);
  return /[.e]/.test(s) ? s : `${s}.0`;
}

const tuple = (items: readonly (string | number)[]) =>
  items.length === 1 ? `(${items[0]},)` : `(${items.join(', ')})`;

const UNARY: Record<string, (x: string) => string> = {
  neg: (x) => `torch.neg(${x})`,
  exp: (x) => `torch.exp(${x})`,
  log: (x) => `torch.log(${x})`,
  tanh: (x) => `torch.tanh(${x})`,
  sqrt: (x) => `torch.sqrt(${x})`,
  recip: (x) => `torch.reciprocal(${x})`,
  erf: (x) => `torch.erf(${x})`,
  step: (x) => `(${x} > 0).to(${x}.dtype)`,
};

const BINARY: Record<string, string> = { add: '+', sub: '-', mul: '*', div: '/' };

/**
 * `def NAME(inputs, n, dtype, device):` returning a dict of the program's outputs by name, each
 * [n, ...shape]. `inputs` maps every input name of the program to a [n, ...shape] tensor.
 */
export function renderTorchFunction(p: Program, name: string, doc: string): string {
  const v = (id: number) => `v${id}`;
  /** Whether a node's value has the leading batch axis: whether it depends on an input. */
  const batched: boolean[] = [];
  for (const n of p.nodes) batched[n.id] = n.op.kind === 'input' || n.args.some((a) => batched[a]);
  const lastUse = new Map<number, number>();
  for (const n of p.nodes) for (const a of n.args) lastUse.set(a, n.id);
  const outputs = new Set(p.outputs.map((o) => o.node));
  /** A constant as a tensor where a Python number would not do (a matmul operand, an output, erf). */
  const needsTensor = new Set<number>();
  for (const n of p.nodes)
    if (n.op.kind === 'matmul' || (n.op.kind === 'unary' && n.op.fn === 'erf'))
      for (const a of n.args) needsTensor.add(a);
  for (const id of outputs) needsTensor.add(id);

  const lines: string[] = [`def ${name}(inputs, n, dtype, device):`, `    """${doc}"""`];
  /** Constants a Python number stands for, by node. */
  const literal = new Map<number, string>();
  const operand = (id: number) => literal.get(id) ?? v(id);
  const expr = (n: Node): string => {
    const [a, b] = n.args.map(operand);
    const lead = batched[n.id] ? ['n'] : [];
    const shift = lead.length;
    const op = n.op;
    switch (op.kind) {
      case 'input':
        return `inputs["${stringText(op.name)}"]`;
      case 'const':
        return `torch.full(${tuple(n.shape)}, ${pythonFloat(op.value)}, dtype=dtype, device=device)`;
      case 'tril':
        return `torch.ones(${tuple(n.shape)}, dtype=dtype, device=device).tril()`;
      case 'unary':
        return UNARY[op.fn](a);
      case 'binary':
        return `${a} ${BINARY[op.fn]} ${b}`;
      case 'matmul':
        return `torch.matmul(${a}, ${b})`;
      case 'sum':
        return `torch.sum(${a}, dim=${tuple(op.axes.map((x) => x + shift))})`;
      case 'expand': {
        const from = p.nodes[n.args[0]].shape;
        const lift = n.shape.length - from.length;
        const aligned = lift ? `${a}.reshape(${tuple([...lead, ...Array(lift).fill(1), ...from])})` : a;
        return `${aligned}.expand(${tuple([...lead, ...n.shape])})`;
      }
      case 'reshape':
        return `${a}.reshape(${tuple([...lead, ...n.shape])})`;
      case 'transpose':
        return `${a}.permute(${tuple([...lead.map(() => 0), ...op.perm.map((x) => x + shift)])})`;
    }
  };
  for (const n of p.nodes) {
    if (n.op.kind === 'const' && !needsTensor.has(n.id)) {
      literal.set(n.id, pythonFloat(n.op.value));
      continue;
    }
    const where = n.origin ? `  # line ${n.origin.start.line}` : '';
    lines.push(`    ${v(n.id)} = ${expr(n)}${where}`);
    const dead = [...new Set(n.args)].filter((x) => lastUse.get(x) === n.id && !outputs.has(x) && !literal.has(x));
    if (dead.length) lines.push(`    del ${dead.map(v).join(', ')}`);
  }
  const result = p.outputs.map((o) => {
    const value = batched[o.node] ? v(o.node) : `${v(o.node)}.expand(${tuple(['n', ...p.nodes[o.node].shape])})`;
    return `"${stringText(o.name)}": ${value}`;
  });
  lines.push(`    return {${result.join(', ')}}`);
  return lines.join('\n');
}
