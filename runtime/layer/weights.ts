/**
 * The layer's weights under the published PyTorch names (`q_proj.weight`, `ttt_norm_weight`,
 * `W1`, ...), with an optional prefix (`weights.` in the reference files), checked against the
 * spec's signature and the configuration. The spec's states and params find their tensors through
 * an explicit name map: by default state NAME ← NAME and param NAME ← NAME, except gamma ←
 * ttt_norm_weight and beta ← ttt_norm_bias. An update rule's per-token inputs (`lr.S`, `decay`,
 * `momentum`) each have a learned gate like the lr's, `STEM.weight` [H, C] and `STEM.bias` [H],
 * the stem `rule.NAME` unless the map names another (runtime/layer/rule-gates.ts says what they
 * compute).
 */
import { type KernelSignature, statePorts, paramPorts } from '../../core/signature.ts';
import type { Tensor } from '../../core/tensor.ts';
import { loadSafetensors, type SafeFile, type SafetensorsSource, toFloat64 } from '../safetensors.ts';
import { type LayerConfig, type LayerConfigOptions, resolveLayerConfig } from './config.ts';
import { defaultRuleGateStem, ruleGateWeightNames } from './rule-gates.ts';

export interface LayerWeights {
  /** [C, C] each, `nn.Linear` layout: y = x Wᵀ. */
  qProj: Tensor;
  kProj: Tensor;
  vProj: Tensor;
  oProj: Tensor;
  /** [C, C], when the gate is on. */
  gProj?: Tensor;
  /** [H, C] and [H], when the spec's lr is per token. */
  lrWeight?: Tensor;
  lrBias?: Tensor;
  /** An update rule's per-token input (`lr.S`, `decay`, `momentum`) → its gate, [H, C] and [H]. */
  ruleGates: Map<string, { weight: Tensor; bias: Tensor }>;
  /** [K], the learned offset of scale_i, when the spec's scale is per position. */
  tokenOffset?: Tensor;
  /** [C] each. */
  postNormWeight: Tensor;
  postNormBias: Tensor;
  /** Spec param name → [H, ...shape]. */
  params: Map<string, Tensor>;
  /** Spec state name → [H, ...shape]: the inner model's initial weights. */
  states: Map<string, Tensor>;
}

/** Overrides of the spec-name → weight-name map (weight names without the prefix). */
export interface WeightNames {
  states?: Record<string, string>;
  params?: Record<string, string>;
  /** An update rule's per-token input (`decay`, `lr.W1`, ...) → the stem of its gate's `.weight` and `.bias`. */
  ruleGates?: Record<string, string>;
}

export interface WeightOptions {
  /** Prepended to every weight name, e.g. `weights.`. */
  prefix?: string;
  names?: WeightNames;
}

export type LayerOptions = LayerConfigOptions & WeightOptions;

export class WeightError extends Error {}

const DEFAULT_PARAM_NAMES: Record<string, string> = { gamma: 'ttt_norm_weight', beta: 'ttt_norm_bias' };
const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16']);

/** One tensor the layer reads: its weight name and the shapes it may have (the first is canonical). */
export interface WeightSpec {
  name: string;
  shapes: number[][];
  /** Who reads it, for error messages: "the spec's state 'W1'". */
  role?: string;
}

/** Spec name → weight name for states, params and rule gates (a stem), checked for names the spec does not have. */
export function weightNameMap(
  signature: KernelSignature,
  names: WeightNames = {},
): { states: Map<string, string>; params: Map<string, string>; ruleGates: Map<string, string> } {
  const build = (
    kind: 'state' | 'param' | 'rule input',
    declared: readonly { name: string }[],
    overrides: Record<string, string> = {},
    defaults: Record<string, string> = {},
  ) => {
    const known = new Set(declared.map((d) => d.name));
    for (const name of Object.keys(overrides)) {
      if (!known.has(name))
        throw new WeightError(
          `the weight-name map names ${kind} '${name}', which the spec does not declare (its ${kind}s: ${[...known].join(', ') || 'none'})`,
        );
    }
    return new Map(declared.map((d) => [d.name, overrides[d.name] ?? defaults[d.name] ?? d.name]));
  };
  return {
    states: build('state', statePorts(signature), names.states),
    params: build('param', paramPorts(signature), names.params, DEFAULT_PARAM_NAMES),
    ruleGates: build(
      'rule input',
      (signature.rule?.tokenInputs ?? []).map((name) => ({ name })),
      names.ruleGates,
      Object.fromEntries((signature.rule?.tokenInputs ?? []).map((n) => [n, defaultRuleGateStem(n)])),
    ),
  };
}

/** Every tensor the layer reads, in a fixed order, with its accepted shapes. */
export function weightSpecs(signature: KernelSignature, config: LayerConfig, names: WeightNames = {}): WeightSpec[] {
  const { width: C, heads: H, miniBatch: K } = config;
  const map = weightNameMap(signature, names);
  const specs: WeightSpec[] = [
    { name: 'q_proj.weight', shapes: [[C, C]] },
    { name: 'k_proj.weight', shapes: [[C, C]] },
    { name: 'v_proj.weight', shapes: [[C, C]] },
    { name: 'o_proj.weight', shapes: [[C, C]] },
  ];
  if (config.useGate) specs.push({ name: 'g_proj.weight', shapes: [[C, C]] });
  if (signature.lr.kind === 'token')
    specs.push(
      {
        name: 'learnable_ttt_lr_weight',
        shapes: [
          [H, 1, C],
          [H, C],
        ],
      },
      { name: 'learnable_ttt_lr_bias', shapes: [[H, 1], [H]] },
    );
  for (const [input, stem] of map.ruleGates) {
    const names = ruleGateWeightNames(stem);
    const role = `the update rule's per-token '${input}'`;
    specs.push({ name: names.weight, shapes: [[H, C]], role }, { name: names.bias, shapes: [[H]], role });
  }
  if (signature.scale.kind === 'position') specs.push({ name: 'learnable_token_idx', shapes: [[K]] });
  specs.push({ name: 'post_norm.weight', shapes: [[C]] }, { name: 'post_norm.bias', shapes: [[C]] });
  for (const p of paramPorts(signature))
    specs.push({ name: map.params.get(p.name)!, shapes: [[H, ...p.shape]], role: `the spec's param '${p.name}'` });
  for (const s of statePorts(signature)) {
    // The PyTorch layers keep a bias state as [heads, 1, n]: a row vector per head.
    const shapes =
      s.shape.length === 1
        ? [
            [H, 1, ...s.shape],
            [H, ...s.shape],
          ]
        : [[H, ...s.shape]];
    specs.push({ name: map.states.get(s.name)!, shapes, role: `the spec's state '${s.name}'` });
  }
  return specs;
}

const showShape = (s: readonly number[]) => `[${s.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/** Reads one weight as f64, in its canonical shape; errors name the tensor and both shapes. */
function readWeight(file: SafeFile, prefix: string, spec: WeightSpec): Tensor {
  const full = prefix + spec.name;
  const expected = spec.shapes.map(showShape).join(' or ');
  const what = spec.role ? ` (for ${spec.role})` : '';
  const t = file.tensors.get(full);
  if (!t) {
    const elsewhere = [...file.tensors.keys()].filter((n) => n.endsWith(`.${spec.name}`) || n === spec.name);
    const hint = elsewhere.length ? `; the file has ${elsewhere.map((n) => `'${n}'`).join(', ')}: wrong prefix?` : '';
    throw new WeightError(`${file.name}: missing tensor '${full}'${what}, expected shape ${expected}${hint}`);
  }
  if (!FLOAT_DTYPES.has(t.dtype))
    throw new WeightError(
      `${file.name}: tensor '${full}'${what} has dtype ${t.dtype}; weights must be F64, F32, F16 or BF16`,
    );
  if (!spec.shapes.some((s) => sameShape(s, t.shape)))
    throw new WeightError(
      `${file.name}: tensor '${full}'${what} has shape ${showShape(t.shape)}, expected ${expected}`,
    );
  return { shape: spec.shapes[0], data: Float64Array.from(toFloat64(t)) };
}

/** The weights of a layer from a parsed safetensors file, all checked before any is returned. */
export function readLayerWeights(
  file: SafeFile,
  signature: KernelSignature,
  config: LayerConfig,
  options: WeightOptions = {},
): LayerWeights {
  const prefix = options.prefix ?? '';
  const specs = weightSpecs(signature, config, options.names);
  const read = new Map(specs.map((s) => [s.name, readWeight(file, prefix, s)]));
  return assembleWeights(signature, read, options.names);
}

/** Weights by name (without prefix, canonical shapes, as `weightSpecs` lists them) → the layer's weights. */
export function assembleWeights(
  signature: KernelSignature,
  byName: ReadonlyMap<string, Tensor>,
  names: WeightNames = {},
): LayerWeights {
  const map = weightNameMap(signature, names);
  const get = (name: string) => byName.get(name)!;
  const squeeze = (t: Tensor | undefined, shape: number[]) => t && { shape, data: t.data };
  const lrWeight = byName.get('learnable_ttt_lr_weight');
  const lrBias = byName.get('learnable_ttt_lr_bias');
  return {
    qProj: get('q_proj.weight'),
    kProj: get('k_proj.weight'),
    vProj: get('v_proj.weight'),
    oProj: get('o_proj.weight'),
    gProj: byName.get('g_proj.weight'),
    lrWeight: squeeze(lrWeight, lrWeight ? [lrWeight.shape[0], lrWeight.shape[2]] : []),
    lrBias: squeeze(lrBias, lrBias ? [lrBias.shape[0]] : []),
    ruleGates: new Map(
      [...map.ruleGates].map(([input, stem]) => {
        const names = ruleGateWeightNames(stem);
        return [input, { weight: get(names.weight), bias: get(names.bias) }];
      }),
    ),
    tokenOffset: byName.get('learnable_token_idx'),
    postNormWeight: get('post_norm.weight'),
    postNormBias: get('post_norm.bias'),
    params: new Map(paramPorts(signature).map((p) => [p.name, get(map.params.get(p.name)!)])),
    states: new Map(
      statePorts(signature).map((s) => {
        const t = get(map.states.get(s.name)!);
        return [s.name, { shape: [t.shape[0], ...s.shape], data: t.data }];
      }),
    ),
  };
}

/** Configuration and weights from a weights file: options, else its metadata, else its shapes. */
export function layerFromSafeFile(
  file: SafeFile,
  signature: KernelSignature,
  options: LayerOptions = {},
): { config: LayerConfig; weights: LayerWeights } {
  const prefix = options.prefix ?? '';
  const q = file.tensors.get(`${prefix}q_proj.weight`);
  const hints = {
    width: q?.shape.length === 2 ? q.shape[1] : undefined,
    hasGate: file.tensors.has(`${prefix}g_proj.weight`),
  };
  const config = resolveLayerConfig(signature, options, file.metadata, hints);
  return { config, weights: readLayerWeights(file, signature, config, options) };
}

/** Safetensors weights: a file's path or URL (fetched in a browser), its bytes, or the file already parsed. */
export type WeightsSource = SafetensorsSource;

export async function loadLayerWeights(
  source: WeightsSource,
  signature: KernelSignature,
  options: LayerOptions = {},
): Promise<{ config: LayerConfig; weights: LayerWeights }> {
  return layerFromSafeFile(await loadSafetensors(source), signature, options);
}
