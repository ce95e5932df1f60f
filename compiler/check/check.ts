/**
 * The checker: names, sizes, shapes and the update rule of a parsed layer. It reports every error
 * it can find in one pass and yields a CheckedLayer only when there is none.
 */
import { diag } from '../diagnostics/codes.ts';
import type { Diagnostic } from '../diagnostics/diagnostic.ts';
import type { SourceFile, TensorDecl, UpdateDecl, ViewFnDecl } from '../syntax/ast.ts';
import type { CheckedLayer, CheckedTensor, CheckedView, CheckedViewFn, DimOverrides, Shape } from './checked.ts';
import { checkConstants, checkUpdateConstants } from './constants.ts';
import { calleesFirst } from './fn-order.ts';
import { checkPackedLimit, checkSizeLimits, checkTensorLimit } from './limits.ts';
import { collectScope, type Report } from './scope.ts';
import { formatShape, sameShape } from './shape-rules.ts';
import { ShapeChecker, type Locals } from './shapes.ts';
import { Sizes } from './sizes.ts';
import { checkUpdateRule } from './update-rule.ts';

export function check(
  source: SourceFile,
  overrides: DimOverrides = new Map(),
): { layer: CheckedLayer | undefined; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const report: Report = (d) => diagnostics.push(d);
  const layer = source.layer;
  if (!layer) {
    const start = { offset: 0, line: 1, col: 1 };
    report(
      diag(
        'TTT205',
        { file: source.file, start, end: start },
        'the file declares no layer',
        'write `layer NAME { ... }`',
      ),
    );
    return { layer: undefined, diagnostics };
  }

  const scope = collectScope(layer, report);
  const sizes = new Sizes(scope, report);
  sizes.evaluate(overrides);
  checkSizeLimits(scope, sizes.values, overrides, report);
  const tensorShapes = new Map<string, Shape | undefined>();
  for (const decl of [...scope.states, ...scope.params]) {
    const shape = sizes.resolve(decl.type);
    if (shape) checkTensorLimit(`${decl.kind} '${decl.name}'`, shape, 1, decl.type.span, report);
    if (scope.symbols.get(decl.name) === decl) tensorShapes.set(decl.name, shape);
  }
  const shapeOf = (decls: TensorDecl[]) => decls.map((d) => tensorShapes.get(d.name));
  checkPackedLimit('the states and their accumulators', shapeOf(scope.states), 2, layer.nameSpan, report);
  checkPackedLimit('the params', shapeOf(scope.params), 1, layer.nameSpan, report);
  const shapes = new ShapeChecker(scope, sizes, tensorShapes, report);
  for (const fn of calleesFirst(scope)) shapes.fn(fn);
  const loss = scope.loss && checkViewFn(scope.loss, shapes, sizes);
  const output = scope.output && checkViewFn(scope.output, shapes, sizes);
  if (loss?.result && loss.result.length > 0) {
    report(diag('TTT308', scope.loss!.body.result.span, `the loss is ${formatShape(loss.result)}, not a scalar`));
  }
  if (loss && output) checkSharedViews(loss, output, report);
  if (loss && output && loss.fn.views.length + output.fn.views.length === 0)
    report(diag('TTT209', layer.nameSpan, `layer '${layer.name}' has no view: neither loss nor output reads a token`));
  const K = scope.minibatch && sizes.values.get(scope.minibatch.name);
  for (const view of [...(loss?.fn.views ?? []), ...(output?.fn.views ?? [])])
    if (K) checkTensorLimit(`a mini-batch of view '${view.name}'`, view.shape, K, view.span, report);
  if (scope.update) checkUpdate(scope.update, report);
  if (scope.update) checkUpdateConstants(scope.update, report);
  checkConstants(layer, report);
  const rules = scope.update && checkUpdateRule(scope.update, scope, shapes, tensorShapes, report);

  diagnostics.sort((a, b) => a.span.start.offset - b.span.start.offset);
  if (diagnostics.length > 0 || !loss || !output || !scope.update || !rules || !scope.minibatch)
    return { layer: undefined, diagnostics };

  const tensor = (decl: TensorDecl): CheckedTensor => ({
    name: decl.name,
    shape: tensorShapes.get(decl.name)!,
    span: decl.span,
  });
  return {
    layer: {
      name: layer.name,
      ast: layer,
      dims: new Map(scope.sizes.filter((d) => d.kind === 'dim').map((d) => [d.name, sizes.values.get(d.name)!])),
      minibatch: { name: scope.minibatch.name, size: sizes.values.get(scope.minibatch.name)! },
      states: scope.states.map(tensor),
      params: scope.params.map(tensor),
      fns: new Map(scope.fns.map((f) => [f.name, f])),
      loss: loss.fn,
      output: output.fn,
      views: [...loss.fn.views, ...output.fn.views.filter((v) => !loss.fn.views.some((l) => l.name === v.name))],
      update: {
        rule: 'sgd',
        // The shared rate, when some state reads it; else an unused constant, so that no stage expects an `lr` input.
        lr: [...rules.rates.values()].some((r) => r.input === 'lr')
          ? scope.update.lr!
          : { kind: 'constant', value: 1, span: scope.update.span },
        scale: scope.update.scale,
        span: scope.update.span,
        rules,
      },
      shapes: shapes.shapes,
    },
    diagnostics,
  };
}

interface ViewFnResult {
  fn: CheckedViewFn;
  /** Each view's declared shape, undefined where its type has an error. */
  declared: Map<string, Shape | undefined>;
  result: Shape | undefined;
}

function checkViewFn(decl: ViewFnDecl, shapes: ShapeChecker, sizes: Sizes): ViewFnResult {
  const locals: Locals = new Map();
  const declared = new Map<string, Shape | undefined>();
  const views: CheckedView[] = decl.params.map((p) => {
    const shape = sizes.resolve(p.type);
    shapes.declare(locals, p.name, p.nameSpan, 'view', shape);
    declared.set(p.name, shape);
    return { name: p.name, shape: shape ?? [], span: p.span };
  });
  const result = shapes.body(decl.body, locals);
  return { fn: { views, body: decl.body, span: decl.span }, declared, result };
}

/** A view that both loss and output read is one per-token input, so it has one shape. */
function checkSharedViews(loss: ViewFnResult, output: ViewFnResult, report: Report): void {
  for (const view of output.fn.views) {
    const inLoss = loss.declared.get(view.name);
    const here = output.declared.get(view.name);
    if (inLoss && here && !sameShape(inLoss, here)) {
      const line = loss.fn.views.find((l) => l.name === view.name)!.span.start.line;
      report(
        diag(
          'TTT310',
          view.span,
          `view '${view.name}' is ${formatShape(here)} here but ${formatShape(inLoss)} in loss (line ${line})`,
        ),
      );
    }
  }
}

function checkUpdate(update: UpdateDecl, report: Report): void {
  if (update.rule !== 'sgd') report(diag('TTT312', update.ruleSpan, `unknown update rule '${update.rule}'`));
  if (update.lr?.kind === 'constant' && !isPositiveNumber(update.lr.value)) {
    report(diag('TTT313', update.lr.span, `the learning rate must be positive, not ${update.lr.value}`));
  }
  if (update.scale.kind === 'constant' && !isPositiveNumber(update.scale.value)) {
    report(diag('TTT314', update.scale.span, `the scale must be positive, not ${update.scale.value}`));
  }
}

function isPositiveNumber(n: number): boolean {
  return Number.isFinite(n) && n > 0;
}
