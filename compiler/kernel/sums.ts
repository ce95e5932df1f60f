/**
 * The lowering of a sum stage: each element of the result by one invocation, or, where invocations
 * would sit idle and lanes can exchange values, by a group of lanes (a CUDA warp's 32, a warp that
 * owns the rows, or a WebGPU subgroup of run-time width) combined by a butterfly of exchanges.
 */
import { size } from '../../core/shape.ts';
import type { Program } from '../ir/ir.ts';
import type { WarpRows } from '../schedule/kernel.ts';
import { sumLanes } from '../schedule/sum-lanes.ts';
import { add, div, mod } from './affine.ts';
import type { KernelFeatures } from './features.ts';
import { type Expr, type Stmt, assign, comment, compare, constant, float, floatOp, int, name, variable } from './ir.ts';
import { type DimNames, Index } from './tensor-index.ts';
import type { Values } from './values.ts';
import { warpRowsLoop, warpSpan } from './warp-rows.ts';

const tid = name('tid');

/** WebGPU's smallest subgroup: a row of fewer terms than this is summed by one lane. */
const MIN_RUNTIME_LANES = 4;

/** What a sum's lowering reads of the kernel being lowered. */
export interface SumContext {
  program: Program;
  invocations: number;
  values: Values;
  names: DimNames;
  features: KernelFeatures;
  /** Names the values a group of statements reads more than once. */
  shared(group: Stmt[]): Stmt[];
  /** `body` for each element e < n, strided over the invocations. */
  elements(n: Expr | number, body: Stmt[]): Stmt;
}

/**
 * A sum stage: every element of the result, the sum of the reduced axes at its index. With lane
 * shuffles and a long reduction over fewer elements than there are invocations, a group of lanes
 * sums each element (each lane every `lanes`-th term, then a butterfly of shuffles), so the
 * invocations that one-element-per-invocation would leave idle share the work.
 */
export function lowerSum(
  c: SumContext,
  id: number,
  index: Index,
  write: (value: Expr) => Stmt,
  owners?: WarpRows,
): Stmt[] {
  const n = c.program.nodes[id];
  if (n.op.kind !== 'sum') throw new Error(`node %${id} is not a sum`);
  const axes = n.op.axes;
  const x = c.program.nodes[n.args[0]];
  const reducedShape = axes.map((a) => x.shape[a]);
  const reduced = Index.flat(reducedShape, name('p'), c.names).dims();
  const kept = index.dims();
  const source: Expr[] = [];
  let ki = 0;
  let ri = 0;
  for (let a = 0; a < x.shape.length; a++) source.push(axes.includes(a) ? reduced[ri++] : kept[ki++]);
  const value = c.values.value(x.id, Index.dims(x.shape, source, c.names));
  const terms = size(reducedShape);
  const elements = size(n.shape);
  const acc = name('acc');
  const accumulate = (from: Expr, step: number): Stmt[] => [
    variable('acc', 'float', float(0)),
    {
      kind: 'for',
      counter: 'p',
      from,
      to: c.names(terms),
      step: int(step),
      body: c.shared([assign('acc', floatOp('+', acc, value))]),
    },
  ];
  const perLane = [...accumulate(int(0), 1), write(acc)];
  const invocations = c.invocations;
  const runtime = c.features.runtimeLanes;
  if (!owners && runtime && terms >= MIN_RUNTIME_LANES && elements < invocations && invocations % runtime.max === 0)
    return runtimeLanesSum(c, elements, terms, value, write, runtime);
  const lanes = sumLanes(terms, elements, invocations, c.features.lanes, owners);
  if (lanes === 1)
    return [
      owners
        ? warpSpan(owners, owners.rowsPerWarp * owners.rowElements, elements, perLane)
        : c.elements(elements, perLane),
    ];
  const lane = mod(tid, lanes);
  const rowSum: Stmt[] = [
    ...accumulate(lane, lanes),
    ...butterfly(int(lanes), lanes),
    { kind: 'if', condition: compare('==', lane, int(0)), body: [write(acc)] },
  ];
  const how = `lane l sums terms l, l + ${lanes}, ...; shuffles then combine the lanes.`;
  if (owners) return [comment(`Each row by the warp that owns it: ${how}`), warpRowsLoop(owners, rowSum)];
  return [comment(`${lanes} lanes per element: ${how}`), groupPerElement(int(lanes), elements, invocations, rowSum)];
}

/**
 * `acc` summed over the `width` lanes of a group (at most `max`) by a butterfly of exchanges; a
 * step whose mask a run-time width may not reach is guarded by it.
 */
function butterfly(width: Expr, max: number): Stmt[] {
  const acc = name('acc');
  const steps: Stmt[] = [];
  for (let m = max / 2; m >= 1; m /= 2) {
    const step = assign('acc', floatOp('+', acc, { kind: 'shuffle-xor', x: acc, mask: m, width: max }));
    steps.push(width.kind === 'int' ? step : { kind: 'if', condition: compare('<', int(m), width), body: [step] });
  }
  return steps;
}

/** `body` for each element e < elements by the group of `width` lanes that e falls to. */
function groupPerElement(width: Expr, elements: number, invocations: number, body: Stmt[]): Stmt {
  return {
    kind: 'for',
    counter: 'e',
    from: div(tid, width),
    to: int(elements),
    step: div(int(invocations), width),
    body,
  };
}

/**
 * A sum stage over groups of lanes whose width is a run-time value (KernelFeatures.runtimeLanes):
 * lane l of a group takes terms l, l + width, ... and a butterfly of exchanges combines them.
 * Every lane of a group runs the same trips (a term past the row is skipped inside the trip),
 * so the lanes that exchange are together at each exchange.
 */
function runtimeLanesSum(
  c: SumContext,
  elements: number,
  terms: number,
  value: Expr,
  write: (value: Expr) => Stmt,
  runtime: { width: string; max: number },
): Stmt[] {
  const width = name(runtime.width);
  const lane = mod(tid, width);
  const acc = name('acc');
  const rowSum: Stmt[] = [
    variable('acc', 'float', float(0)),
    {
      kind: 'for',
      counter: 'trip',
      from: int(0),
      to: c.names(terms),
      step: width,
      body: [
        constant('p', 'index', add(name('trip'), lane)),
        {
          kind: 'if',
          condition: compare('<', name('p'), c.names(terms)),
          body: c.shared([assign('acc', floatOp('+', acc, value))]),
        },
      ],
    },
    ...butterfly(width, runtime.max),
    { kind: 'if', condition: compare('==', lane, int(0)), body: [write(acc)] },
  ];
  return [
    comment(
      `${runtime.width} lanes per element: lane l sums terms l, l + ${runtime.width}, ...; exchanges then combine the lanes.`,
    ),
    groupPerElement(width, elements, c.invocations, rowSum),
  ];
}
