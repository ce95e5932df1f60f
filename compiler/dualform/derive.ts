/**
 * Derives the mini-batch program: one step of the inner loop over a chunk of R rows (R = K for
 * prefill, fewer for decode): consecutive tokens of one mini-batch, from the per-token loss, its
 * autodiff gradient and the update rule.
 *
 * Inputs: `view.NAME` [R, ...], `mask` [R] (1 for rows holding a token), `lr` [R] when
 * `lr: token`, `scale` [R] (each row's scale_i) when `scale: position`, `commit` (scale_{K-1}
 * when the chunk ends the mini-batch, else 0), `keep` (0 when it ends it, else 1), `state.S` and
 * `accum.S` per state, and `param.P`. Outputs: `output` [R, ...], `state.S`, `accum.S`.
 *
 * With A the carried accumulator and G_j = lr_j ∇loss_j at the chunk's starting state, row i
 * reads out with S_i = S − scale_i (A + Σ_{j≤i} G_j); see semantics.md.
 */
import { programKey } from '../../core/mangle.ts';
import type { CheckedLayer } from '../check/checked.ts';
import type { Diagnostic } from '../diagnostics/diagnostic.ts';
import { Builder, type Port, type Program, size } from '../ir/ir.ts';
import { Lowering } from '../ir/lower.ts';
import type { Val } from '../ir/rows.ts';
import { chooseForms, type FormChoice, type FormRequest } from './forms.ts';
import { keySide } from './key-side.ts';
import { deriveRuleProgram } from './rules.ts';

/** The walk's inputs to a chunk: which rows hold tokens, and whether the chunk ends the mini-batch. */
export const WALK = { mask: 'mask', commit: 'commit', keep: 'keep' } as const;

export interface ChunkProgram {
  layer: CheckedLayer;
  /** The mini-batch size. */
  K: number;
  /** Rows per chunk: at most K tokens of one mini-batch are processed at once. */
  rows: number;
  /** The form that was asked for, to derive the same program again for another number of rows. */
  request: FormRequest;
  forms: FormChoice[];
  program: Program;
}

export function deriveChunkProgram(
  layer: CheckedLayer,
  request: FormRequest = 'auto',
  rows = layer.minibatch.size,
): { chunk?: ChunkProgram; diagnostics: Diagnostic[] } {
  const { forms, diagnostics } = chooseForms(layer, request);
  if (diagnostics.length) return { diagnostics };
  if (!layer.update.rules.plain) {
    const program = deriveRuleProgram(layer, forms, rows);
    return { chunk: { layer, K: layer.minibatch.size, rows, request, forms, program }, diagnostics: [] };
  }
  const R = rows;
  const b = new Builder();
  const formOf = new Map(forms.map((f) => [f.state, f.form]));
  const perRow = (s: string) => formOf.get(s) !== 'dual-matmul';
  const shapeOf = new Map(layer.states.map((s) => [s.name, s.shape]));

  const mask = b.input(WALK.mask, [R]);
  const lrSpec = layer.update.lr;
  const lr =
    lrSpec.kind === 'token'
      ? b.mul(b.input(programKey({ role: 'rate', name: 'lr' }), [R]), mask)
      : b.scale(mask, lrSpec.value);
  const scaleSpec = layer.update.scale;
  const scale =
    scaleSpec.kind === 'position'
      ? b.input(programKey({ role: 'scale', name: 'scale' }), [R])
      : b.const(scaleSpec.kind === 'constant' ? scaleSpec.value : 1, [R]);
  const commit = b.input(WALK.commit, []);
  const keep = b.input(WALK.keep, []);
  const state = new Map(
    layer.states.map((s) => [s.name, b.input(programKey({ role: 'state', name: s.name }), s.shape)]),
  );
  const accum = new Map(
    layer.states.map((s) => [s.name, b.input(programKey({ role: 'accum', name: s.name }), s.shape)]),
  );
  /** `scale` down the rows, broadcast over a row value's other axes. */
  const rowScale = (shape: readonly number[]) => b.expand(b.reshape(scale, [R, ...shape.slice(1).map(() => 1)]), shape);

  // Gradient at the chunk's starting state, lr-weighted: per-row copies where rows need their own state.
  const keys = keySide(layer, b, R, state, perRow, lr);
  const stepOf = new Map(keys.summed);
  for (const [s, g] of keys.rowGrads) stepOf.set(s, b.sum(g, [0]));

  // Per-row states: S_i = S − scale_i (A + Σ_{j≤i} G_j), the cumulative sum a tril product.
  const tril = b.tril(R);
  const rowState = (s: string): number => {
    const shape = shapeOf.get(s)!;
    const rowsShape = [R, ...shape];
    const g = keys.rowGrads.get(s) ?? b.const(0, rowsShape);
    const cumulative = b.reshape(b.matmul(tril, b.reshape(g, [R, size(shape)])), rowsShape);
    const total = b.add(b.expand(accum.get(s)!, rowsShape), cumulative);
    return b.sub(b.expand(state.get(s)!, rowsShape), b.mul(rowScale(rowsShape), total));
  };

  // Read-out: x̄ S_i = x̄ S − scale_i (x̄ A + Σ_{j≤i} (x̄ · x_j) δ_j) for dual matmul states.
  const queryLowering: Lowering = new Lowering(layer, b, R, {
    value: (s) => (perRow(s) ? { id: rowState(s), rows: true } : { id: state.get(s)!, rows: false }),
    matmul: (s, x, sv): Val | undefined => {
      if (perRow(s)) return undefined;
      const xq = queryLowering.ops.lift(x);
      let correction = b.matmul(xq, accum.get(s)!);
      for (const k of keys.sites.get(s)!) {
        const attention = b.mul(tril, b.matmul(xq, b.mT(k.x)));
        correction = b.add(correction, b.matmul(attention, k.delta));
      }
      const base = b.matmul(xq, sv.id);
      return { id: b.sub(base, b.mul(rowScale(b.shape(base)), correction)), rows: true };
    },
  });
  b.origin = layer.output.span;
  const output = queryLowering.ops.lift(queryLowering.viewFn(layer.output));

  b.origin = layer.update.span;
  const outputs: Port[] = [{ name: programKey({ role: 'output', name: 'output' }), node: output }];
  for (const s of layer.states) {
    const shape = shapeOf.get(s.name)!;
    const total = b.add(accum.get(s.name)!, stepOf.get(s.name) ?? b.const(0, shape));
    outputs.push({
      name: programKey({ role: 'state', name: s.name }),
      node: b.sub(state.get(s.name)!, b.mul(b.expand(commit, shape), total)),
    });
    outputs.push({ name: programKey({ role: 'accum', name: s.name }), node: b.mul(b.expand(keep, shape), total) });
  }
  return {
    chunk: { layer, K: layer.minibatch.size, rows, request, forms, program: b.build(outputs) },
    diagnostics: [],
  };
}
