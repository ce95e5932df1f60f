/** A readable listing of a program: one line per node, with the spec line it came from. */
import type { Node, Op, Program } from './ir.ts';

function describe(op: Op): string {
  switch (op.kind) {
    case 'input':
      return `input ${op.name}`;
    case 'const':
      return `const ${op.value}`;
    case 'unary':
    case 'binary':
      return op.fn;
    case 'sum':
      return `sum axes=[${op.axes.join(', ')}]`;
    case 'transpose':
      return `transpose perm=[${op.perm.join(', ')}]`;
    default:
      return op.kind;
  }
}

export function printNode(n: Node): string {
  const args = n.args.map((a) => `%${a}`).join(', ');
  const text = `%${n.id}: [${n.shape.join(', ')}] = ${describe(n.op)}${args ? ' ' + args : ''}`;
  // The line alone: the listing is of one spec, and its file name is spec text, not safe to print.
  const where = n.origin ? `line ${n.origin.start.line}` : '';
  return where ? `${text.padEnd(56)} # ${where}` : text;
}

export function printProgram(p: Program, title = 'program'): string {
  const lines = [`${title}(${p.inputs.map((i) => `${i.name}: %${i.node}`).join(', ')}) {`];
  for (const n of p.nodes) if (n.op.kind !== 'input') lines.push('  ' + printNode(n));
  lines.push(`  return ${p.outputs.map((o) => `${o.name} = %${o.node}`).join(', ')}`);
  lines.push('}');
  return lines.join('\n');
}
