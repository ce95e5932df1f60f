/**
 * The sequence layer's configuration (semantics.md §2): sizes and hyper-parameters, resolved from
 * explicit options, else a weights file's `__metadata__` (keys as the reference files write them),
 * else what the weights' shapes imply; the head dim and the mini-batch size always come from the
 * spec's signature, and any other source that disagrees with them is an error.
 */
import { type KernelSignature, viewPorts, outputPort } from '../../core/signature.ts';
import { stateRateInput } from '../../core/update-rule.ts';

export interface LayerConfig {
  /** C: the layer's input and output width, heads · headDim. */
  width: number;
  heads: number;
  /** D: the per-head width, the spec's view size. */
  headDim: number;
  /** K: the spec's mini-batch size. */
  miniBatch: number;
  /** The inner learning rate's base: lr_t = baseLr · σ(x·w_h + c_h) / D. */
  baseLr: number;
  /** y = gelu_tanh(x W_gᵀ) ⊙ post_norm(...) before the output projection. */
  useGate: boolean;
  ropeTheta: number;
}

/** What a caller may set; anything left out comes from the file's metadata or the weights. */
export interface LayerConfigOptions {
  width?: number;
  heads?: number;
  baseLr?: number;
  useGate?: boolean;
  ropeTheta?: number;
}

/** What the weights themselves say, for files without metadata. */
export interface WeightHints {
  /** The input width of `q_proj.weight`. */
  width?: number;
  /** Whether the file has `g_proj.weight`. */
  hasGate?: boolean;
}

export class LayerConfigError extends Error {}

const DEFAULT_ROPE_THETA = 10000;

/** The views a spec may use, fed by q_proj, k_proj and v_proj; RoPE rotates q and k. */
const VIEW_NAMES = ['q', 'k', 'v'] as const;
export type ViewName = (typeof VIEW_NAMES)[number];

/**
 * Checks the spec fits the sequence layer and returns its head dim: every view is one of q, k, v
 * and one [D] vector per token, and so is the output.
 */
export function specHeadDim(signature: KernelSignature): number {
  const fail = (why: string): never => {
    throw new LayerConfigError(
      `${signature.layer}: the sequence layer needs views q, k, v (from q_proj, k_proj, v_proj) and an output of one [D] vector per token; ${why}`,
    );
  };
  const D = viewPorts(signature)[0]?.shape[0];
  if (D === undefined) return fail('the spec has no views');
  for (const v of viewPorts(signature)) {
    if (!(VIEW_NAMES as readonly string[]).includes(v.name)) fail(`view '${v.name}' has no projection`);
    if (v.shape.length !== 1 || v.shape[0] !== D)
      fail(`view '${v.name}' has shape [${v.shape.join(', ')}], expected [${D}]`);
  }
  const out = outputPort(signature).shape;
  if (out.length !== 1 || out[0] !== D) fail(`the output has shape [${out.join(', ')}], expected [${D}]`);
  // Under 'after' a token reads the end of its mini-batch, which decode has not seen yet.
  if (signature.rule?.read === 'after')
    throw new LayerConfigError(
      `${signature.layer}: read order 'after' (update, then apply) reads tokens not yet seen, so the sequence layer cannot decode it; use read order 'causal' or 'before'`,
    );
  return D;
}

function metaNumber(meta: Record<string, string>, key: string): number | undefined {
  const text = meta[key];
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value))
    throw new LayerConfigError(`__metadata__ '${key}' is '${text}', not a number`);
  return value;
}

function metaBool(meta: Record<string, string>, key: string): boolean | undefined {
  const text = meta[key];
  if (text === undefined) return undefined;
  const t = text.toLowerCase();
  if (t === 'true' || t === '1') return true;
  if (t === 'false' || t === '0') return false;
  throw new LayerConfigError(`__metadata__ '${key}' is '${text}', not True or False`);
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0)
    throw new LayerConfigError(`${name} must be a positive integer, got ${value}`);
  return value;
}

export function resolveLayerConfig(
  signature: KernelSignature,
  options: LayerConfigOptions = {},
  metadata: Record<string, string> = {},
  hints: WeightHints = {},
): LayerConfig {
  const headDim = specHeadDim(signature);
  const miniBatch = signature.K;
  // The weights were trained for one D and K; a spec compiled for others would silently misread them.
  const metaD = metaNumber(metadata, 'head_dim');
  if (metaD !== undefined && metaD !== headDim)
    throw new LayerConfigError(
      `the weights are for head_dim ${metaD} but the spec's views have D = ${headDim} (compile with -D D=${metaD})`,
    );
  const metaK = metaNumber(metadata, 'mini_batch_size');
  if (metaK !== undefined && metaK !== miniBatch)
    throw new LayerConfigError(
      `the weights are for mini_batch_size ${metaK} but the spec's mini-batch is K = ${miniBatch} (compile with -D K=${metaK})`,
    );

  const heads = options.heads ?? metaNumber(metadata, 'heads');
  const width =
    options.width ??
    metaNumber(metadata, 'width') ??
    hints.width ??
    (heads !== undefined ? heads * headDim : undefined);
  if (width === undefined)
    throw new LayerConfigError(
      'the layer width is unknown: give it (width or heads) or use a weights file with q_proj.weight',
    );
  positiveInteger('width', width);
  if (width % headDim !== 0)
    throw new LayerConfigError(`width ${width} is not a multiple of the head dim D = ${headDim}`);
  const resolvedHeads = positiveInteger('heads', heads ?? width / headDim);
  if (resolvedHeads * headDim !== width)
    throw new LayerConfigError(`width ${width} is not heads × head_dim = ${resolvedHeads} × ${headDim}`);

  const baseLr = options.baseLr ?? metaNumber(metadata, 'ttt_base_lr');
  // Only per-token rates use the base rate; it differs by model (1.0 TTT-Linear, 0.1 TTT-MLP), so no default.
  const tokenRates =
    signature.lr.kind === 'token' || (signature.rule?.tokenInputs ?? []).some((n) => n.startsWith(stateRateInput('')));
  if (baseLr === undefined && tokenRates) {
    throw new LayerConfigError(
      "the base inner learning rate is unknown: give baseLr (tttc layer --base-lr) or set __metadata__ 'ttt_base_lr'",
    );
  }
  if (baseLr !== undefined && !(baseLr >= 0 && Number.isFinite(baseLr)))
    throw new LayerConfigError(`the base inner learning rate must be a finite number >= 0, got ${baseLr}`);
  const ropeTheta = options.ropeTheta ?? metaNumber(metadata, 'rope_theta') ?? DEFAULT_ROPE_THETA;
  // RoPE's frequencies are theta^(-2i/D): a theta <= 0 makes them NaN or infinite.
  if (!(ropeTheta > 0 && Number.isFinite(ropeTheta)))
    throw new LayerConfigError(`rope_theta must be a finite number > 0, got ${ropeTheta}`);
  return {
    width,
    heads: resolvedHeads,
    headDim,
    miniBatch,
    baseLr: baseLr ?? 1,
    useGate: options.useGate ?? metaBool(metadata, 'use_gate') ?? hints.hasGate ?? false,
    ropeTheta,
  };
}
