/** The layer's declarations by name, with duplicates and missing members reported. */
import { diag } from '../diagnostics/codes.ts';
import type { Diagnostic, Span } from '../diagnostics/diagnostic.ts';
import type { DimDecl, FnDecl, LayerDecl, MinibatchDecl, TensorDecl, UpdateDecl, ViewFnDecl } from '../syntax/ast.ts';
import { BUILTINS } from './builtins.ts';

/** Anything with a name at layer level. */
export type LayerSymbol = DimDecl | MinibatchDecl | TensorDecl | FnDecl;

export interface LayerScope {
  layer: LayerDecl;
  /** The first declaration of each name. */
  symbols: Map<string, LayerSymbol>;
  /** `dim`s and the `minibatch`, in declaration order: the order they are evaluated in. */
  sizes: (DimDecl | MinibatchDecl)[];
  states: TensorDecl[];
  params: TensorDecl[];
  fns: FnDecl[];
  minibatch: MinibatchDecl | undefined;
  loss: ViewFnDecl | undefined;
  output: ViewFnDecl | undefined;
  update: UpdateDecl | undefined;
}

export type Report = (d: Diagnostic) => void;

/** "the state 'W'" */
export function describeSymbol(symbol: LayerSymbol): string {
  return `the ${symbol.kind} '${symbol.name}'`;
}

/** The keyword that opens a declaration: the start of its span. */
function keywordSpan(decl: { span: Span }, keyword: string): Span {
  const { start } = decl.span;
  return {
    file: decl.span.file,
    start,
    end: { offset: start.offset + keyword.length, line: start.line, col: start.col + keyword.length },
  };
}

export function collectScope(layer: LayerDecl, report: Report): LayerScope {
  const scope: LayerScope = {
    layer,
    symbols: new Map(),
    sizes: [],
    states: [],
    params: [],
    fns: [],
    minibatch: undefined,
    loss: undefined,
    output: undefined,
    update: undefined,
  };

  const once = <K extends 'minibatch' | 'loss' | 'output' | 'update'>(
    kind: K,
    decl: NonNullable<LayerScope[K]>,
  ): boolean => {
    if (scope[kind]) {
      report(
        diag('TTT202', keywordSpan(decl, kind), `the layer already has ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}`),
      );
      return false;
    }
    scope[kind] = decl;
    return true;
  };

  const declare = (symbol: LayerSymbol): void => {
    const earlier = scope.symbols.get(symbol.name);
    if (earlier) {
      report(
        diag(
          'TTT202',
          symbol.nameSpan,
          `'${symbol.name}' is already declared as ${describeSymbol(earlier)} on line ${earlier.nameSpan.start.line}`,
        ),
      );
    } else if (BUILTINS.has(symbol.name)) {
      report(diag('TTT202', symbol.nameSpan, `'${symbol.name}' is the name of a built-in function`));
    } else {
      scope.symbols.set(symbol.name, symbol);
    }
  };

  for (const member of layer.members) {
    switch (member.kind) {
      case 'loss':
      case 'output':
        once(member.kind, member);
        break;
      case 'update':
        once('update', member);
        break;
      case 'minibatch':
        declare(member);
        if (once('minibatch', member)) scope.sizes.push(member);
        break;
      case 'dim':
        declare(member);
        scope.sizes.push(member);
        break;
      case 'state':
      case 'param':
        declare(member);
        (member.kind === 'state' ? scope.states : scope.params).push(member);
        break;
      case 'fn':
        declare(member);
        scope.fns.push(member);
        break;
    }
  }

  const missing = (what: string, example: string) =>
    report(diag('TTT205', layer.nameSpan, `layer '${layer.name}' has no ${what}`, `add ${example}`));
  if (!scope.minibatch) missing('minibatch', '`minibatch K = 16`');
  if (scope.states.length === 0) missing('state', 'a hidden state, e.g. `state W: [D, D]`');
  if (!scope.loss) missing('loss', 'e.g. `loss(k: [D], v: [D]) = 0.5 * sum(square(k @ W - v))`');
  if (!scope.output) missing('output', 'e.g. `output(q: [D]) = q @ W`');
  if (!scope.update) missing('update', '`update sgd(lr: token, scale: position)`');
  return scope;
}
