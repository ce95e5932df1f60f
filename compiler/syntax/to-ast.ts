/**
 * CST -> AST. After error recovery the CST may lack any part; a declaration with a missing part is
 * left out of the AST (the parser has already reported why), so the AST only holds complete nodes.
 */
import type { CstElement, CstNode, IToken } from 'chevrotain';
import { diag } from '../diagnostics/codes.ts';
import { spanUnion, type Diagnostic, type Position, type Span } from '../diagnostics/diagnostic.ts';
import type {
  BinaryOperator,
  Body,
  Expr,
  LayerDecl,
  LetStmt,
  Member,
  NamedArg,
  Param,
  RateSpec,
  ScaleSpec,
  TypeExpr,
  UpdateDecl,
  FactorSpec,
  ReadOrder,
} from './ast.ts';
import { DEFAULT_NEWTON_SCHULZ_STEPS, MAX_NEWTON_SCHULZ_STEPS } from '../../core/update-rule.ts';
import { Equals, F32, Minibatch, NumberLiteral, Output, Param as ParamKeyword } from './lexer.ts';

/** The arguments of `update sgd(...)`. */
const UPDATE_ARGS = ['lr', 'scale', 'decay', 'momentum', 'read'];
const READ_ORDERS: readonly ReadOrder[] = ['causal', 'before', 'after'];

/** Deeper expressions are refused so that recursive passes over the AST cannot overflow the stack. */
const MAX_EXPR_DEPTH = 200;

/** Offsets to 1-based lines and columns. */
export class SpanMaker {
  private readonly lineStarts: number[] = [0];

  constructor(
    readonly file: string,
    text: string,
  ) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.lineStarts.push(i + 1);
  }

  position(offset: number): Position {
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { offset, line: lo + 1, col: offset - this.lineStarts[lo]! + 1 };
  }

  range(start: number, end: number): Span {
    return { file: this.file, start: this.position(start), end: this.position(end) };
  }

  token(token: IToken): Span {
    return this.range(token.startOffset, token.startOffset + token.image.length);
  }
}

function isToken(element: CstElement): element is IToken {
  return 'tokenType' in element;
}

/** A real token under `label`: tokens invented by error recovery do not count. */
function tokenAt(node: CstNode, label: string): IToken | undefined {
  const element = node.children[label]?.[0];
  return element && isToken(element) && !element.isInsertedInRecovery && Number.isFinite(element.startOffset)
    ? element
    : undefined;
}

function tokensAt(node: CstNode, label: string): IToken[] {
  return (node.children[label] ?? []).filter(isToken);
}

function nodeAt(node: CstNode, label: string): CstNode | undefined {
  const element = node.children[label]?.[0];
  return element && !isToken(element) ? element : undefined;
}

function nodesAt(node: CstNode, label: string): CstNode[] {
  return (node.children[label] ?? []).filter((element): element is CstNode => !isToken(element));
}

/** Every item converted by `f`, or undefined if any fails to convert. */
function all<A, B>(items: A[], f: (item: A) => B | undefined): B[] | undefined {
  const out: B[] = [];
  for (const item of items) {
    const converted = f(item);
    if (converted === undefined) return undefined;
    out.push(converted);
  }
  return out;
}

function exprDepth(root: Expr): number {
  let deepest = 0;
  const stack: [Expr, number][] = [[root, 1]];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [expr, depth] = top;
    deepest = Math.max(deepest, depth);
    if (expr.kind === 'binary') stack.push([expr.left, depth + 1], [expr.right, depth + 1]);
    else if (expr.kind === 'negate') stack.push([expr.operand, depth + 1]);
    else if (expr.kind === 'call') {
      for (const arg of expr.args) stack.push([arg, depth + 1]);
      for (const named of expr.named) stack.push([named.value, depth + 1]);
    }
  }
  return deepest;
}

/**
 * `recovered`: the parser met errors and recovered, possibly by skipping tokens, so a missing part
 * is not reported again here.
 */
export function toAst(
  file: CstNode,
  spans: SpanMaker,
  recovered: boolean,
): { layer: LayerDecl | undefined; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const report = (d: Diagnostic): undefined => {
    diagnostics.push(d);
    return undefined;
  };

  function layer(node: CstNode | undefined): LayerDecl | undefined {
    if (!node) return undefined;
    const keyword = tokenAt(node, 'Layer');
    const name = tokenAt(node, 'name');
    if (!keyword || !name) return undefined;
    const members = nodesAt(node, 'member').flatMap((m) => member(m) ?? []);
    const close = tokenAt(node, 'RBrace');
    const last = close ? spans.token(close) : (members.at(-1)?.span ?? spans.token(name));
    return { name: name.image, nameSpan: spans.token(name), members, span: spanUnion(spans.token(keyword), last) };
  }

  function member(node: CstNode): Member | undefined {
    const [kind, inner] = Object.entries(node.children)[0] ?? [];
    const decl = inner?.[0];
    if (!decl || isToken(decl)) return undefined;
    switch (kind) {
      case 'dimDecl':
        return dimDecl(decl);
      case 'tensorDecl':
        return tensorDecl(decl);
      case 'fnDecl':
        return fnDecl(decl);
      case 'viewFnDecl':
        return viewFnDecl(decl);
      case 'updateDecl':
        return updateDecl(decl);
    }
    return undefined;
  }

  function dimDecl(node: CstNode): Member | undefined {
    const keyword = tokenAt(node, 'keyword');
    const name = tokenAt(node, 'name');
    const value = topExpr(nodeAt(node, 'value'));
    if (!keyword || !name || !value) return undefined;
    const kind = keyword.tokenType === Minibatch ? 'minibatch' : 'dim';
    return {
      kind,
      name: name.image,
      nameSpan: spans.token(name),
      value,
      span: spanUnion(spans.token(keyword), value.span),
    };
  }

  function tensorDecl(node: CstNode): Member | undefined {
    const keyword = tokenAt(node, 'keyword');
    const name = tokenAt(node, 'name');
    const type = typeExpr(nodeAt(node, 'type'));
    if (!keyword || !name || !type) return undefined;
    const kind = keyword.tokenType === ParamKeyword ? 'param' : 'state';
    return {
      kind,
      name: name.image,
      nameSpan: spans.token(name),
      type,
      span: spanUnion(spans.token(keyword), type.span),
    };
  }

  function fnDecl(node: CstNode): Member | undefined {
    const keyword = tokenAt(node, 'keyword');
    const name = tokenAt(node, 'name');
    const params = paramList(nodeAt(node, 'params'));
    const returnNode = nodeAt(node, 'returnType');
    const returnType = returnNode && typeExpr(returnNode);
    const fnBody = body(nodeAt(node, 'body'));
    if (!keyword || !name || !params || !fnBody || (returnNode && !returnType)) return undefined;
    const span = spanUnion(spans.token(keyword), fnBody.span);
    return { kind: 'fn', name: name.image, nameSpan: spans.token(name), params, returnType, body: fnBody, span };
  }

  function viewFnDecl(node: CstNode): Member | undefined {
    const keyword = tokenAt(node, 'keyword');
    const params = paramList(nodeAt(node, 'params'));
    const viewBody = body(nodeAt(node, 'body'));
    if (!keyword || !params || !viewBody) return undefined;
    const kind = keyword.tokenType === Output ? 'output' : 'loss';
    return { kind, params, body: viewBody, span: spanUnion(spans.token(keyword), viewBody.span) };
  }

  function paramList(node: CstNode | undefined): Param[] | undefined {
    if (!node || !tokenAt(node, 'RParen')) return undefined;
    return all(nodesAt(node, 'params'), (p) => {
      const name = tokenAt(p, 'name');
      const type = typeExpr(nodeAt(p, 'type'));
      if (!name || !type) return undefined;
      return { name: name.image, nameSpan: spans.token(name), type, span: spanUnion(spans.token(name), type.span) };
    });
  }

  function typeExpr(node: CstNode | undefined): TypeExpr | undefined {
    const open = node && tokenAt(node, 'open');
    if (!node || !open) return undefined;
    if (open.tokenType === F32) return { dims: [], span: spans.token(open) };
    const close = tokenAt(node, 'close');
    const dims = all(nodesAt(node, 'dims'), topExpr);
    if (!close || !dims) return undefined;
    return { dims, span: spanUnion(spans.token(open), spans.token(close)) };
  }

  function body(node: CstNode | undefined): Body | undefined {
    const open = node && tokenAt(node, 'open');
    const result = node && topExpr(nodeAt(node, 'result'));
    const lets = node && all(nodesAt(node, 'lets'), letStmt);
    if (!node || !open || !result || !lets) return undefined;
    if (open.tokenType === Equals) return { lets, result, span: spanUnion(spans.token(open), result.span) };
    const close = tokenAt(node, 'close');
    return close && { lets, result, span: spanUnion(spans.token(open), spans.token(close)) };
  }

  function letStmt(node: CstNode): LetStmt | undefined {
    const keyword = tokenAt(node, 'keyword');
    const name = tokenAt(node, 'name');
    const value = topExpr(nodeAt(node, 'value'));
    if (!keyword || !name || !value) return undefined;
    return { name: name.image, nameSpan: spans.token(name), value, span: spanUnion(spans.token(keyword), value.span) };
  }

  function updateDecl(node: CstNode): UpdateDecl | undefined {
    const keyword = tokenAt(node, 'keyword');
    const rule = tokenAt(node, 'rule');
    const close = tokenAt(node, 'close') ?? tokenAt(node, 'RParen');
    if (!keyword || !rule || !close) return undefined;
    const span = spanUnion(spans.token(keyword), spans.token(close));
    const args = new Map<string, IToken>();
    let wellFormed = true;
    for (const arg of nodesAt(node, 'args')) {
      const name = tokenAt(arg, 'name');
      const value = tokenAt(arg, 'value');
      if (!name || !value) return undefined;
      if (args.has(name.image) || !UPDATE_ARGS.includes(name.image)) {
        const why = args.has(name.image)
          ? `'${name.image}' is given twice`
          : `update takes ${UPDATE_ARGS.map((a) => `'${a}'`).join(', ')}, not '${name.image}'`;
        report(diag('TTT207', spans.token(name), why));
        wellFormed = false;
        continue;
      }
      args.set(name.image, value);
    }
    const block = updateBlock(node);
    if (!block) return undefined;
    const at = (name: string) => args.get(name);
    const lr = at('lr') && rateSpec(at('lr')!);
    const scale = at('scale') ? scaleSpec(at('scale')!) : undefined;
    const decay = at('decay') && factorSpec(at('decay')!, 'decay');
    const momentum = at('momentum') && factorSpec(at('momentum')!, 'momentum');
    const read = at('read') && readOrder(at('read')!);
    // Beyond plain sgd, `scale` can only be `none`, so it may be left out.
    const extended = ['decay', 'momentum', 'read'].some((a) => args.has(a)) || tokenAt(node, 'open') !== undefined;
    if (!args.has('lr') && block.rates.length === 0 && !recovered)
      report(diag('TTT313', span, "update needs a learning rate, e.g. 'lr: token'"));
    if (!args.has('scale') && !extended && !recovered)
      report(diag('TTT314', span, "update needs a scale, e.g. 'scale: position' or 'scale: none'"));
    const failed = (name: string, value: unknown) => args.has(name) && value === undefined;
    if (
      !wellFormed ||
      !block.ok ||
      ['lr', 'scale', 'decay', 'momentum', 'read'].some((a) => failed(a, { lr, scale, decay, momentum, read }[a]))
    )
      return undefined;
    if ((!lr && block.rates.length === 0) || (!scale && !extended)) return undefined;
    return {
      kind: 'update',
      rule: rule.image,
      ruleSpan: spans.token(rule),
      lr,
      scale: scale ?? { kind: 'none', span: spans.token(rule) },
      decay,
      momentum,
      read,
      rates: block.rates,
      commits: block.commits,
      orthogonalize: block.orthogonalize,
      span,
    };
  }

  /** The statements of the update's block: rates of their own, commit transforms, orthogonalisation. */
  function updateBlock(
    node: CstNode,
  ): (Pick<UpdateDecl, 'rates' | 'commits' | 'orthogonalize'> & { ok: boolean }) | undefined {
    const out: Pick<UpdateDecl, 'rates' | 'commits' | 'orthogonalize'> & { ok: boolean } = {
      rates: [],
      commits: [],
      orthogonalize: [],
      ok: true,
    };
    for (const stmt of nodesAt(node, 'stmts')) {
      const verb = tokenAt(stmt, 'verb');
      const target = tokenAt(stmt, 'target');
      if (!verb || !target) return undefined;
      const value = tokenAt(stmt, 'value');
      const expr = nodeAt(stmt, 'expr');
      const parens = tokenAt(stmt, 'LParen') !== undefined;
      const last = tokenAt(stmt, 'close') ?? value;
      const span = spanUnion(
        spans.token(verb),
        expr ? (topExpr(expr)?.span ?? spans.token(target)) : last ? spans.token(last) : spans.token(target),
      );
      const head = { state: target.image, stateSpan: spans.token(target), span };
      if (verb.image === 'lr' && value) {
        const rate = rateSpec(value);
        if (rate) out.rates.push({ ...head, rate });
        else out.ok = false;
      } else if (verb.image === 'commit' && expr) {
        const e = topExpr(expr);
        if (e) out.commits.push({ ...head, value: e });
        else out.ok = false;
      } else if (verb.image === 'orthogonalize' && !value && !expr) {
        const steps = orthogonalizeSteps(stmt, spans.token(target));
        if (steps) out.orthogonalize.push({ ...head, ...steps });
        else out.ok = false;
      } else {
        report(
          diag(
            'TTT348',
            spanUnion(spans.token(verb), span),
            `'${verb.image} ${target.image}${value ? ': ...' : expr ? ' = ...' : parens ? '(...)' : ''}' is not an update statement`,
          ),
        );
        out.ok = false;
      }
    }
    return out;
  }

  /** `(steps: N)` of `orthogonalize`, 5 when left out. */
  function orthogonalizeSteps(stmt: CstNode, fallback: Span): { steps: number; stepsSpan: Span } | undefined {
    let result = { steps: DEFAULT_NEWTON_SCHULZ_STEPS, stepsSpan: fallback };
    for (const arg of nodesAt(stmt, 'args')) {
      const name = tokenAt(arg, 'name');
      const value = tokenAt(arg, 'value');
      if (!name || !value) return undefined;
      if (name.image !== 'steps') {
        report(diag('TTT207', spans.token(name), `orthogonalize takes only 'steps', not '${name.image}'`));
        return undefined;
      }
      const steps = Number(value.image);
      if (value.tokenType !== NumberLiteral || !Number.isInteger(steps) || steps < 1 || steps > MAX_NEWTON_SCHULZ_STEPS)
        return report(
          diag(
            'TTT349',
            spans.token(value),
            `'steps' is a whole number from 1 to ${MAX_NEWTON_SCHULZ_STEPS}, not '${value.image}'`,
          ),
        );
      result = { steps, stepsSpan: spans.token(value) };
    }
    return result;
  }

  function factorSpec(value: IToken, what: 'decay' | 'momentum'): FactorSpec | undefined {
    const span = spans.token(value);
    if (value.tokenType === NumberLiteral) {
      const v = Number(value.image);
      const ok = what === 'decay' ? v > 0 && v <= 1 : v >= 0 && v < 1;
      if (ok) return { kind: 'constant', value: v, span };
      const range = what === 'decay' ? 'in (0, 1]' : 'in [0, 1)';
      return report(diag('TTT341', span, `a constant ${what} is a number ${range}, not ${value.image}`));
    }
    if (value.image === 'token') return { kind: 'token', span };
    return report(diag('TTT341', span, `the ${what} is 'token' or a number, not '${value.image}'`));
  }

  function readOrder(value: IToken): { order: ReadOrder; span: Span } | undefined {
    const span = spans.token(value);
    if (READ_ORDERS.includes(value.image as ReadOrder)) return { order: value.image as ReadOrder, span };
    return report(diag('TTT342', span, `the read order is 'causal', 'before' or 'after', not '${value.image}'`));
  }

  function rateSpec(value: IToken): RateSpec | undefined {
    const span = spans.token(value);
    if (value.tokenType === NumberLiteral) return { kind: 'constant', value: Number(value.image), span };
    if (value.image === 'token') return { kind: 'token', span };
    return report(diag('TTT313', span, `the learning rate is 'token' or a number, not '${value.image}'`));
  }

  function scaleSpec(value: IToken): ScaleSpec | undefined {
    const span = spans.token(value);
    if (value.tokenType === NumberLiteral) return { kind: 'constant', value: Number(value.image), span };
    if (value.image === 'position' || value.image === 'none') return { kind: value.image, span };
    return report(diag('TTT314', span, `the scale is 'position', 'none' or a number, not '${value.image}'`));
  }

  /** An expression that hangs off a declaration: converted, then refused if too deep. */
  function topExpr(node: CstNode | undefined): Expr | undefined {
    const e = node && expression(node);
    if (e && exprDepth(e) > MAX_EXPR_DEPTH) {
      return report(diag('TTT106', e.span, `expression nested more than ${MAX_EXPR_DEPTH} levels deep`));
    }
    return e;
  }

  /** A left-associative chain `a op b op c` (the `expression` and `product` rules). */
  function chain(node: CstNode, operand: (n: CstNode) => Expr | undefined): Expr | undefined {
    const operands = all(nodesAt(node, 'operands'), operand);
    const operators = tokensAt(node, 'operators');
    if (!operands || operands.length === 0 || operators.length !== operands.length - 1) return undefined;
    return operands.slice(1).reduce<Expr>((left, right, i) => {
      const op = operators[i]!.image as BinaryOperator;
      return { kind: 'binary', op, left, right, span: spanUnion(left.span, right.span) };
    }, operands[0]!);
  }

  function expression(node: CstNode): Expr | undefined {
    return chain(node, (n) => chain(n, unary));
  }

  function unary(node: CstNode): Expr | undefined {
    const operandNode = nodeAt(node, 'operand');
    if (!operandNode) return undefined;
    if (!node.children.minus) return primary(operandNode);
    const minus = tokenAt(node, 'minus');
    const operand = unary(operandNode);
    return minus && operand && { kind: 'negate', operand, span: spanUnion(spans.token(minus), operand.span) };
  }

  function primary(node: CstNode): Expr | undefined {
    const number = tokenAt(node, 'number');
    if (number) return { kind: 'number', value: Number(number.image), span: spans.token(number) };
    const name = tokenAt(node, 'name');
    if (name) {
      const args = nodeAt(node, 'call');
      return args ? call(name, args) : { kind: 'name', name: name.image, span: spans.token(name) };
    }
    const open = tokenAt(node, 'open');
    const close = tokenAt(node, 'close');
    const innerNode = nodeAt(node, 'inner');
    const inner = innerNode && expression(innerNode);
    // The parentheses belong to the span, so a diagnostic underlines `(a + b)` whole.
    return open && close && inner && { ...inner, span: spanUnion(spans.token(open), spans.token(close)) };
  }

  function call(callee: IToken, node: CstNode): Expr | undefined {
    const close = tokenAt(node, 'close');
    if (!close) return undefined;
    const args: Expr[] = [];
    const named: NamedArg[] = [];
    for (const arg of nodesAt(node, 'args')) {
      const valueNode = nodeAt(arg, 'value');
      const value = valueNode && expression(valueNode);
      if (!value) return undefined;
      const name = tokenAt(arg, 'name');
      if (arg.children.name && !name) return undefined;
      if (name) named.push({ name: name.image, value, span: spanUnion(spans.token(name), value.span) });
      else if (named.length > 0) report(diag('TTT105', value.span, 'a positional argument follows a named one'));
      else args.push(value);
    }
    const calleeSpan = spans.token(callee);
    return {
      kind: 'call',
      callee: callee.image,
      calleeSpan,
      args,
      named,
      span: spanUnion(calleeSpan, spans.token(close)),
    };
  }

  return { layer: layer(nodeAt(file, 'layer')), diagnostics };
}
