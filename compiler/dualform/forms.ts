/**
 * Chooses, per state tensor, how the mini-batch program reads it out for each row:
 * - `dual-matmul`: every use is `x @ S` with x a vector; rows read out through the K×K dual form.
 * - `dual-elementwise`: every use is `z + S`, `z - S` or `z * S`; rows get their own copy
 *   S − scale_i·(A + Σ_{j≤i} G_j), which is the dual form of an additive/elementwise state.
 * - `primal`: anything else; rows get their own copy built from per-token gradients.
 */
import { programKey } from '../../core/mangle.ts';
import type { CheckedLayer } from '../check/checked.ts';
import { diag } from '../diagnostics/codes.ts';
import type { Diagnostic, Span } from '../diagnostics/diagnostic.ts';
import { Builder } from '../ir/ir.ts';
import { Lowering, type UseKind } from '../ir/lower.ts';

export type StateForm = 'dual-matmul' | 'dual-elementwise' | 'primal';
export type FormRequest = 'auto' | 'dual' | 'primal';

export interface FormChoice {
  state: string;
  form: StateForm;
  /** Why a dual form was not possible, when it was not. */
  why?: { code: 'TTT401' | 'TTT402'; message: string; span: Span };
}

interface Use {
  kind: UseKind;
  span: Span;
}

function collectUses(layer: CheckedLayer): Map<string, Use[]> {
  const uses = new Map<string, Use[]>(layer.states.map((s) => [s.name, []]));
  const b = new Builder();
  const lowering = new Lowering(layer, b, layer.minibatch.size, {
    value: (name) => ({
      id: b.input(programKey({ role: 'state', name }), layer.states.find((s) => s.name === name)!.shape),
      rows: false,
    }),
    use: (name, kind, span) => uses.get(name)!.push({ kind, span }),
  });
  lowering.viewFn(layer.loss);
  lowering.viewFn(layer.output);
  return uses;
}

function classify(state: string, uses: Use[]): FormChoice {
  const other = uses.find((u) => u.kind === 'other');
  if (other)
    return {
      state,
      form: 'primal',
      why: {
        code: 'TTT401',
        message: `state ${state} is used here other than as \`x @ ${state}\`, \`z + ${state}\` or \`z * ${state}\``,
        span: other.span,
      },
    };
  const matmul = uses.find((u) => u.kind === 'matmul');
  const elementwise = uses.find((u) => u.kind === 'elementwise');
  if (matmul && elementwise) {
    return {
      state,
      form: 'primal',
      why: {
        code: 'TTT402',
        message: `state ${state} is used both as a matrix operand and elementwise`,
        span: elementwise.span,
      },
    };
  }
  return { state, form: elementwise ? 'dual-elementwise' : 'dual-matmul' };
}

export function chooseForms(
  layer: CheckedLayer,
  request: FormRequest,
): { forms: FormChoice[]; diagnostics: Diagnostic[] } {
  const uses = collectUses(layer);
  const forms = layer.states.map((s) => classify(s.name, uses.get(s.name)!));
  const diagnostics: Diagnostic[] = [];
  if (request === 'dual') {
    for (const f of forms) {
      if (f.form === 'primal' && f.why) {
        diagnostics.push(
          diag(
            f.why.code,
            f.why.span,
            `${f.why.message}, so it has no dual form`,
            'use `--form primal` (or the default, `auto`), or rewrite the model so the state enters linearly',
          ),
        );
      }
    }
  }
  if (request === 'primal') return { forms: forms.map((f) => ({ ...f, form: 'primal' })), diagnostics };
  return { forms, diagnostics };
}
