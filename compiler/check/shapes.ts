/**
 * Shapes of value expressions. An expression whose shape cannot be known (because of an error
 * already reported) has shape `undefined`, which silences every check that depends on it.
 */
import { diag } from '../diagnostics/codes.ts';
import type { Span } from '../diagnostics/diagnostic.ts';
import type { Body, Expr, FnDecl, NamedArg } from '../syntax/ast.ts';
import { BUILTINS, type Builtin } from './builtins.ts';
import type { Shape } from './checked.ts';
import { describeSymbol, type LayerScope, type Report } from './scope.ts';
import { elementwiseShape, formatShape, matmulShape, sameShape } from './shape-rules.ts';
import type { Sizes } from './sizes.ts';

type LocalKind = 'parameter' | 'let' | 'view';

interface Local {
  kind: LocalKind;
  shape: Shape | undefined;
}

/** The names a body sees besides the layer's own: fn parameters or views, then its lets. */
export type Locals = Map<string, Local>;

type Call = Extract<Expr, { kind: 'call' }>;

/** How deep checking one fn may lead into others still being checked (only a cycle does). */
const MAX_NESTED_FNS = 256;

export class ShapeChecker {
  /** Shape of every value expression checked. */
  readonly shapes = new Map<Expr, Shape>();
  private readonly fnParams = new Map<FnDecl, (Shape | undefined)[]>();
  private readonly fnResults = new Map<FnDecl, Shape | undefined>();
  /** Fns being checked, innermost last: a call to one of them is recursion. */
  private readonly active: FnDecl[] = [];

  constructor(
    private readonly scope: LayerScope,
    private readonly sizes: Sizes,
    private readonly tensors: ReadonlyMap<string, Shape | undefined>,
    private readonly report: Report,
  ) {}

  /** Adds a fn parameter, view or let, refusing names that are taken. */
  declare(locals: Locals, name: string, span: Span, kind: LocalKind, shape: Shape | undefined): void {
    const symbol = this.scope.symbols.get(name);
    if (locals.has(name))
      this.report(diag('TTT202', span, `'${name}' is already declared here as a ${locals.get(name)!.kind}`));
    else if (symbol) this.report(diag('TTT202', span, `the ${kind} '${name}' would hide ${describeSymbol(symbol)}`));
    else if (BUILTINS.has(name))
      this.report(diag('TTT202', span, `the ${kind} '${name}' would hide the built-in '${name}'`));
    locals.set(name, { kind, shape });
  }

  /** The lets in order, then the result; returns the result's shape. */
  body(body: Body, locals: Locals): Shape | undefined {
    for (const stmt of body.lets) this.declare(locals, stmt.name, stmt.nameSpan, 'let', this.expr(stmt.value, locals));
    return this.expr(body.result, locals);
  }

  /** Checks a fn once; the result is its declared return shape, or the inferred one without a declaration. */
  fn(decl: FnDecl, call?: Call): Shape | undefined {
    if (this.fnResults.has(decl)) return this.fnResults.get(decl);
    if (this.active.includes(decl)) {
      if (call) {
        const cycle = [...this.active.slice(this.active.indexOf(decl)), decl].map((f) => f.name).join(' -> ');
        this.report(diag('TTT204', call.span, `'${decl.name}' is recursive: ${cycle}`));
      }
      return undefined;
    }
    // Fns are checked callees first, so only a cycle nests here; a long one is refused before it
    // can exhaust the stack.
    if (this.active.length >= MAX_NESTED_FNS) {
      if (call)
        this.report(
          diag(
            'TTT210',
            call.span,
            `fn calls nest more than ${MAX_NESTED_FNS} deep here: a cycle of fns (recursion) this long, or a chain beyond it`,
          ),
        );
      return undefined;
    }
    this.active.push(decl);
    const locals: Locals = new Map();
    const params = decl.params.map((p) => {
      const shape = this.sizes.resolve(p.type);
      this.declare(locals, p.name, p.nameSpan, 'parameter', shape);
      return shape;
    });
    this.fnParams.set(decl, params);
    const result = this.body(decl.body, locals);
    const declared = decl.returnType && this.sizes.resolve(decl.returnType);
    if (declared && result && !sameShape(declared, result)) {
      const message = `'${decl.name}' is declared to return ${formatShape(declared)} but returns ${formatShape(result)}`;
      this.report(diag('TTT309', decl.body.result.span, message));
    }
    this.active.pop();
    const shape = decl.returnType ? declared : result;
    this.fnResults.set(decl, shape);
    return shape;
  }

  expr(e: Expr, locals: Locals): Shape | undefined {
    const shape = this.shapeOf(e, locals);
    if (shape) this.shapes.set(e, shape);
    return shape;
  }

  private shapeOf(e: Expr, locals: Locals): Shape | undefined {
    switch (e.kind) {
      case 'number':
        return [];
      case 'name':
        return this.name(e, locals);
      case 'negate':
        return this.expr(e.operand, locals);
      case 'binary': {
        const left = this.expr(e.left, locals);
        const right = this.expr(e.right, locals);
        if (!left || !right) return undefined;
        if (e.op === '@') return matmulShape(left, right) ?? this.matmulMismatch(e, left, right);
        const shape = elementwiseShape(left, right);
        if (!shape) {
          const message = `'${e.op}' needs equal shapes or a scalar side, but gets ${formatShape(left)} and ${formatShape(right)}`;
          this.report(diag('TTT304', e.span, message));
        }
        return shape;
      }
      case 'call':
        return this.call(e, locals);
    }
  }

  private name(e: Extract<Expr, { kind: 'name' }>, locals: Locals): Shape | undefined {
    const local = locals.get(e.name);
    if (local) return local.shape;
    const symbol = this.scope.symbols.get(e.name);
    switch (symbol?.kind) {
      case 'state':
      case 'param':
        return this.tensors.get(e.name);
      case 'dim':
      case 'minibatch':
        return []; // a size used as a value is a scalar constant
      case 'fn':
        return this.fail(diag('TTT203', e.span, `'${e.name}' is a fn; call it, e.g. '${e.name}(...)'`));
    }
    if (BUILTINS.has(e.name))
      return this.fail(diag('TTT203', e.span, `'${e.name}' is a built-in function; call it, e.g. '${e.name}(x)'`));
    return this.fail(diag('TTT201', e.span, `unknown name '${e.name}'`));
  }

  private matmulMismatch(e: Expr, left: Shape, right: Shape): undefined {
    const scalarSide = left.length === 0 ? 'left' : right.length === 0 ? 'right' : undefined;
    const message = scalarSide
      ? `'@' needs vectors or matrices, but its ${scalarSide} side is a scalar`
      : `'@' cannot multiply ${formatShape(left)} by ${formatShape(right)}: the inner sizes ${left.at(-1)} and ${right[0]} differ`;
    return this.fail(diag('TTT305', e.span, message, scalarSide ? "scale by a scalar with '*'" : undefined));
  }

  private call(e: Call, locals: Locals): Shape | undefined {
    const args = e.args.map((arg) => this.expr(arg, locals));
    const local = locals.get(e.callee);
    if (local) return this.fail(diag('TTT203', e.calleeSpan, `'${e.callee}' is a ${local.kind}, not a function`));
    const symbol = this.scope.symbols.get(e.callee);
    if (symbol?.kind === 'fn') return this.fnCall(symbol, e, args);
    if (symbol) return this.fail(diag('TTT203', e.calleeSpan, `${describeSymbol(symbol)} is not a function`));
    const builtin = BUILTINS.get(e.callee);
    if (builtin) return this.builtinCall(builtin, e, args);
    return this.fail(diag('TTT206', e.calleeSpan, `unknown function '${e.callee}'`));
  }

  private fnCall(decl: FnDecl, e: Call, args: (Shape | undefined)[]): Shape | undefined {
    const result = this.fn(decl, e);
    for (const named of e.named) this.report(diag('TTT207', named.span, `fn '${decl.name}' takes no named arguments`));
    const params = this.fnParams.get(decl) ?? [];
    if (args.length !== params.length)
      return this.fail(diag('TTT208', e.span, countMessage(decl.name, params.length, args.length)));
    args.forEach((arg, i) => {
      const param = params[i];
      if (arg && param && !sameShape(arg, param)) {
        const message = `'${decl.params[i]!.name}' of '${decl.name}' is ${formatShape(param)}, but this argument is ${formatShape(arg)}`;
        this.report(diag('TTT315', e.args[i]!.span, message));
      }
    });
    return result;
  }

  private builtinCall(builtin: Builtin, e: Call, args: (Shape | undefined)[]): Shape | undefined {
    this.namedArgs(builtin, e.callee, e.named);
    if (args.length !== builtin.arity)
      return this.fail(diag('TTT208', e.span, countMessage(e.callee, builtin.arity, args.length)));
    const [a, b] = args;
    if (!a || args.some((x) => !x)) return undefined;
    switch (builtin.kind) {
      case 'reduce':
        return [];
      case 'elementwise':
        return a;
      case 'normalise':
        if (a.length === 0)
          return this.fail(
            diag(
              'TTT311',
              e.args[0]!.span,
              `'${e.callee}' normalises over the last axis, but its argument is a scalar`,
            ),
          );
        return a;
      case 'dot':
        if (!sameShape(a, b!))
          return this.fail(
            diag('TTT304', e.span, `'dot' needs two equal shapes, but gets ${formatShape(a)} and ${formatShape(b!)}`),
          );
        return [];
      case 'transpose':
        if (a.length !== 2)
          return this.fail(
            diag('TTT311', e.args[0]!.span, `'transpose' needs a matrix, but its argument is ${formatShape(a)}`),
          );
        return [a[1]!, a[0]!];
      case 'broadcast':
        return this.broadcastCall(e, args as Shape[]);
      case 'power':
        if (constantExponent(e.args[1]!) === undefined)
          this.report(diag('TTT340', e.args[1]!.span, `the exponent of 'pow' must be a number, like 'pow(x, 3)'`));
        if (b!.length !== 0)
          return this.fail(
            diag('TTT340', e.args[1]!.span, `the exponent of 'pow' is a scalar, not ${formatShape(b!)}`),
          );
        return a;
      case 'outer':
        for (const [i, s] of args.entries())
          if (s!.length !== 1)
            return this.fail(
              diag('TTT311', e.args[i]!.span, `'outer' takes two vectors, but this argument is ${formatShape(s!)}`),
            );
        return [a[0]!, b![0]!];
      case 'concat':
        if (a.length === 0 || a.length !== b!.length || !sameShape(a.slice(0, -1), b!.slice(0, -1)))
          return this.fail(
            diag(
              'TTT304',
              e.span,
              `'concat' joins the last axes of two tensors of the same rank and leading sizes, but gets ${formatShape(a)} and ${formatShape(b!)}`,
            ),
          );
        return [...a.slice(0, -1), a.at(-1)! + b!.at(-1)!];
    }
  }

  /** min, max, clamp: their arguments broadcast together like the operands of `+`. */
  private broadcastCall(e: Call, args: Shape[]): Shape | undefined {
    let shape: Shape | undefined = args[0];
    for (const s of args.slice(1)) shape = shape && elementwiseShape(shape, s);
    if (shape) return shape;
    const shown = args.map(formatShape).join(', ');
    return this.fail(
      diag('TTT304', e.span, `'${e.callee}' needs arguments that broadcast together, but gets ${shown}`),
    );
  }

  /** Named arguments of a built-in: known, given once, each a positive number literal. */
  private namedArgs(builtin: Builtin, callee: string, named: NamedArg[]): void {
    const seen = new Set<string>();
    for (const arg of named) {
      if (!builtin.named.includes(arg.name)) {
        const takes = builtin.named.length
          ? `only ${builtin.named.map((n) => `'${n}'`).join(', ')}`
          : 'no named arguments';
        this.report(diag('TTT207', arg.span, `'${callee}' takes ${takes}, not '${arg.name}'`));
      } else if (seen.has(arg.name)) {
        this.report(diag('TTT207', arg.span, `'${arg.name}' is given twice`));
      } else if (arg.value.kind !== 'number' || !(arg.value.value > 0) || !Number.isFinite(arg.value.value)) {
        this.report(diag('TTT317', arg.value.span, `'${arg.name}' must be a positive number literal`));
      }
      seen.add(arg.name);
    }
  }

  private fail(d: Parameters<Report>[0]): undefined {
    this.report(d);
    return undefined;
  }
}

/** The value of a number literal, possibly negated: the only exponents `pow` takes. */
export function constantExponent(e: Expr): number | undefined {
  if (e.kind === 'number') return e.value;
  if (e.kind === 'negate') {
    const inner = constantExponent(e.operand);
    return inner === undefined ? undefined : -inner;
  }
  return undefined;
}

function countMessage(callee: string, expected: number, given: number): string {
  return `'${callee}' takes ${expected} argument${expected === 1 ? '' : 's'} but is given ${given}`;
}
