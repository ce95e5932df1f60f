/**
 * The update rule beyond plain sgd (semantics.md §6): rates per state, decay, momentum, read
 * order, commit transforms and Newton–Schulz orthogonalisation. Checked apart from the rest of
 * the layer; a rule with none of these is `plain`, the paper's rule, derived as before.
 */
import { stateRateInput } from '../../core/update-rule.ts';
import { diag } from '../diagnostics/codes.ts';
import type { RateSpec, UpdateDecl } from '../syntax/ast.ts';
import type { CheckedUpdateRule, Shape } from './checked.ts';
import { describeSymbol, type LayerScope, type Report } from './scope.ts';
import { formatShape, sameShape } from './shape-rules.ts';
import type { ShapeChecker } from './shapes.ts';

export function checkUpdateRule(
  update: UpdateDecl,
  scope: LayerScope,
  shapes: ShapeChecker,
  tensorShapes: ReadonlyMap<string, Shape | undefined>,
  report: Report,
): CheckedUpdateRule {
  const stateNames = scope.states.map((s) => s.name);
  const read = update.read?.order ?? 'causal';
  const decay = update.decay?.kind === 'constant' && update.decay.value === 1 ? undefined : update.decay;
  const momentum = update.momentum?.kind === 'constant' && update.momentum.value === 0 ? undefined : update.momentum;

  /** A statement must name a state, once per kind of statement. */
  const seen = new Map<string, Set<string>>();
  const namesState = (kind: string, name: string, span: Parameters<typeof diag>[1]): boolean => {
    const symbol = scope.symbols.get(name);
    if (symbol?.kind !== 'state') {
      const what = symbol ? describeSymbol(symbol) : `'${name}', which is declared nowhere,`;
      report(diag('TTT344', span, `\`${kind}\` names ${what} not a state`));
      return false;
    }
    const done = seen.get(kind) ?? new Set<string>();
    seen.set(kind, done);
    if (done.has(name)) {
      report(diag('TTT202', span, `state '${name}' has a second \`${kind}\` statement`));
      return false;
    }
    done.add(name);
    return true;
  };

  const rates = new Map<string, { spec: RateSpec; input: string }>();
  for (const r of update.rates) {
    if (!namesState('lr', r.state, r.stateSpan)) continue;
    if (r.rate.kind === 'constant' && !(r.rate.value > 0 && Number.isFinite(r.rate.value)))
      report(diag('TTT313', r.rate.span, `the learning rate must be positive, not ${r.rate.value}`));
    rates.set(r.state, { spec: r.rate, input: stateRateInput(r.state) });
  }
  for (const s of stateNames) {
    if (rates.has(s)) continue;
    if (update.lr) rates.set(s, { spec: update.lr, input: 'lr' });
    else report(diag('TTT350', update.span, `state '${s}' has no learning rate: the update gives no \`lr\``));
  }

  const commits = new Map(
    update.commits.filter((c) => namesState('commit', c.state, c.stateSpan)).map((c) => [c.state, c.value]),
  );
  for (const c of update.commits) {
    if (commits.get(c.state) !== c.value) continue;
    const got = shapes.expr(c.value, new Map());
    const want = tensorShapes.get(c.state);
    if (got && want && !sameShape(got, want))
      report(
        diag(
          'TTT345',
          c.value.span,
          `state '${c.state}' is ${formatShape(want)}, but its commit gives ${formatShape(got)}`,
        ),
      );
  }

  const orthogonalize = new Map<string, number>();
  for (const o of update.orthogonalize) {
    if (!namesState('orthogonalize', o.state, o.stateSpan)) continue;
    const shape = tensorShapes.get(o.state);
    if (shape && shape.length !== 2)
      report(
        diag('TTT347', o.stateSpan, `state '${o.state}' is ${formatShape(shape)}: only a matrix is orthogonalised`),
      );
    const factor = decay ?? momentum;
    if (factor)
      report(
        diag(
          'TTT347',
          o.span,
          `\`orthogonalize\` needs the plain summed update, but the update has ${decay ? 'decay' : 'momentum'}`,
        ),
      );
    orthogonalize.set(o.state, o.steps);
  }

  if (read === 'causal') {
    const transform = update.commits[0] ?? update.orthogonalize[0];
    if (transform)
      report(
        diag(
          'TTT343',
          transform.span,
          `a transform at the end of a mini-batch has no per-token meaning, but tokens read causally${update.read ? '' : ' (the default)'}`,
        ),
      );
  }

  const plain =
    read === 'causal' &&
    !decay &&
    !momentum &&
    update.rates.length === 0 &&
    commits.size === 0 &&
    orthogonalize.size === 0;
  if (!plain && update.scale.kind !== 'none')
    report(
      diag(
        'TTT346',
        update.scale.span,
        `scale '${update.scale.kind === 'constant' ? update.scale.value : update.scale.kind}' cannot go with this rule`,
      ),
    );
  return { plain, rates, decay, momentum, read, commits, orthogonalize };
}
