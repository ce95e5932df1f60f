/**
 * The Run panel: a synthetic sequence through the layer, on WebGPU and in the f64 reference, and
 * three charts: the inner loss per token before and after its update, the kernel's agreement with
 * the reference, and the time per token.
 */
import { drawChart } from './plot.ts';
import { type SequenceOptions, syntheticSequence } from './synthetic.ts';
import { type CompiledLayer, type Tensor, webgpuUnavailable, type WebGPURunner } from './tttc.ts';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** Per token, the mean over the B·H sequences of a [B, H, T] tensor. */
function meanOverSequences(data: Float64Array, BH: number, T: number): Float64Array {
  const out = new Float64Array(T);
  for (let bh = 0; bh < BH; bh++) for (let t = 0; t < T; t++) out[t] += data[bh * T + t] / BH;
  return out;
}

/** Per token, ‖got − want‖ / ‖want‖ over every sequence and output element of that token. */
function relativeErrorPerToken(got: Tensor, want: Tensor, BH: number, T: number): Float64Array {
  const width = want.data.length / (BH * T);
  const out = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    let num = 0;
    let den = 0;
    for (let bh = 0; bh < BH; bh++)
      for (let e = (bh * T + t) * width, end = e + width; e < end; e++) {
        num += (got.data[e] - want.data[e]) ** 2;
        den += want.data[e] ** 2;
      }
    out[t] = Number.isNaN(num) ? Number.POSITIVE_INFINITY : Math.sqrt(den ? num / den : num);
  }
  return out;
}

const mean = (a: ArrayLike<number>, from: number, to: number) => {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i];
  return s / Math.max(1, to - from);
};
const median = (a: Float64Array) => {
  const s = Float64Array.from(a).sort();
  return s.length ? s[s.length >> 1] : Number.NaN;
};
const ms = (x: number) => `${x.toFixed(x < 10 ? 2 : 0)} ms`;

export class RunPanel {
  private layer?: CompiledLayer;
  private runner?: { layer: CompiledLayer; runner: Promise<WebGPURunner> };
  private readonly form = $<HTMLFormElement>('run-options');
  private running = false;

  constructor(
    options: SequenceOptions,
    private readonly onChange: (options: SequenceOptions) => void,
  ) {
    for (const [k, v] of Object.entries(options)) {
      const field = this.form.elements.namedItem(k) as HTMLInputElement | HTMLSelectElement | null;
      if (field) field.value = String(v);
    }
    this.form.addEventListener('change', () => this.onChange(this.read()));
    $('run').addEventListener('click', () => void this.run());
    void webgpuUnavailable().then((why) => {
      if (why)
        this.status(
          `WebGPU is not available: ${why}\nRun still plots the inner loss from the f64 reference executor.`,
          'error',
        );
    });
  }

  setLayer(layer: CompiledLayer): void {
    this.layer = layer;
    const s = layer.summary;
    const input = s.lossViews[0] ?? s.outputViews[0];
    const targets = s.lossViews.slice(1).map((v) => v.name);
    const outputs = s.outputViews.filter((v) => v !== input).map((v) => v.name);
    const lr = s.lr.kind === 'token' ? 'lr per token as set here' : `the spec's constant lr ${s.lr.value}`;
    const scale =
      s.scale.kind === 'position'
        ? 'scale 1 at every position'
        : `the spec's scale (${s.scale.kind === 'constant' ? s.scale.value : 'none'})`;
    $('run-about').textContent = input
      ? `Inputs: ${input.name} ~ N(0, 1)` +
        (targets.length ? `; ${targets.join(', ')} = a fixed random map of ${input.name} per head + noise` : '') +
        (outputs.length ? `; ${outputs.join(', ')} = ${input.name} (or a linear map of it) + noise` : '') +
        `; ${lr}; ${scale}; params ~ N(0, 0.5²); matrix states ~ N(0, 1/fan-in), other states ~ N(0, 0.5²).`
      : `${s.name} reads no per-token views: there is no sequence to run.`;
  }

  /**
   * Start building the layer's kernels ahead of a run (on SwiftShader this takes seconds), once
   * per compiled layer; a failure is reported by the run that awaits it.
   */
  prepare(): Promise<WebGPURunner> | undefined {
    const layer = this.layer;
    if (!layer || !navigator.gpu) return undefined;
    if (this.runner?.layer !== layer) {
      const runner = layer.webgpu();
      runner.catch(() => {});
      this.runner = { layer, runner };
    }
    return this.runner.runner;
  }

  private read(): SequenceOptions {
    const get = (k: string) => (this.form.elements.namedItem(k) as HTMLInputElement).value;
    const int = (k: string, lo: number, hi: number) => Math.min(hi, Math.max(lo, Math.round(Number(get(k))) || lo));
    return {
      B: int('B', 1, 16),
      H: int('H', 1, 16),
      T: int('T', 1, 1024),
      seed: int('seed', 1, 2 ** 31),
      map: get('map') === 'nonlinear' ? 'nonlinear' : 'linear',
      noise: Math.max(0, Number(get('noise')) || 0),
      lr: Math.max(0, Number(get('lr')) || 0),
    };
  }

  private status(text: string, kind: 'error' | 'info' = 'info'): void {
    const el = $('run-status');
    el.textContent = text;
    el.className = kind;
  }

  private async run(): Promise<void> {
    const layer = this.layer;
    if (!layer || this.running) return;
    this.running = true;
    const panel = $('panel-run');
    panel.dataset.state = 'running';
    delete panel.dataset.maxError;
    const button = $<HTMLButtonElement>('run');
    button.disabled = true;
    try {
      await this.runOnce(layer);
      panel.dataset.state = 'done';
    } catch (e) {
      this.status(`The run failed: ${e instanceof Error ? e.message : String(e)}`, 'error');
      panel.dataset.state = 'failed';
    } finally {
      button.disabled = false;
      this.running = false;
    }
  }

  private async runOnce(layer: CompiledLayer): Promise<void> {
    const o = this.read();
    this.onChange(o);
    const { B, H, T } = o;
    const lines: string[] = [];
    const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
    this.status('Generating inputs and the f64 reference…');
    // The kernels build in the GPU process while the reference runs here.
    const kernels = this.prepare();
    await frame();
    const inp = layer.inputs(syntheticSequence(layer.summary, o));
    let start = performance.now();
    const trace = await layer.lossTrace(inp, (t) =>
      this.status(`Stepping the f64 reference through the sequence: token ${t} of ${T}…`),
    );
    const reference = layer.reference(inp);
    lines.push(
      `f64 reference (loss before/after each token, and the output): ${ms(performance.now() - start)} on the CPU`,
    );
    const before = meanOverSequences(trace.before, B * H, T);
    const after = meanOverSequences(trace.after, B * H, T);
    const q = Math.max(1, Math.floor(T / 4));
    lines.push(
      `inner loss, mean over the first and last quarter of the sequence: ${mean(before, 0, q).toPrecision(4)} → ${mean(before, T - q, T).toPrecision(4)} before each update, ${mean(after, T - q, T).toPrecision(4)} after`,
    );
    const smooth = Math.max(2, Math.round(T / 16));
    drawChart($('chart-loss'), {
      title: `Inner loss per token, f64 (mean of ${B * H} sequences; bold: running mean of ${smooth})`,
      yLabel: 'loss',
      series: [
        { name: 'before its update', color: '#dc2626', values: before, smooth },
        { name: 'after its update', color: '#2563eb', values: after, smooth },
      ],
    });

    const why = await webgpuUnavailable();
    if (why) {
      lines.push(`WebGPU is not available, so no kernel ran: ${why}`);
      $('chart-error').replaceChildren();
      $('chart-time').replaceChildren();
      this.status(lines.join('\n'), 'error');
      return;
    }
    this.status(`${lines.join('\n')}\nBuilding the WGSL kernels for this adapter…`);
    await frame();
    start = performance.now();
    const runner = await (kernels ?? layer.webgpu());
    lines.push(
      `WebGPU adapter: ${runner.adapterName}; kernels ready ${ms(performance.now() - start)} after the reference`,
    );
    if (runner.warnings.length) lines.push(`WGSL compiler messages: ${runner.warnings.join('; ')}`);
    this.status(`${lines.join('\n')}\nRunning…`);
    await frame();
    const gpu = await runner.run(inp);
    const whole = relativeErrorPerToken(gpu.output, reference.output, B * H, T);
    const stepped = relativeErrorPerToken(gpu.stepOutput, reference.output, B * H, T);
    $('panel-run').dataset.maxError = String(Math.max(...whole, ...stepped));
    lines.push(
      `output vs the f64 reference, largest relative error of a token: ${Math.max(...whole).toExponential(2)} (whole sequence), ${Math.max(...stepped).toExponential(2)} (token by token)`,
      `time: whole sequence ${ms(gpu.sequenceMs)} (${ms(gpu.sequenceMs / T)} per token); one-token calls: median ${ms(median(gpu.tokenMs))}`,
    );
    drawChart($('chart-error'), {
      title: 'WebGPU output vs the f64 reference (relative error per token)',
      yLabel: 'relative error',
      log: true,
      series: [
        { name: 'whole-sequence kernel', color: '#7c3aed', values: whole },
        { name: 'one-token kernel', color: '#059669', values: stepped, dashed: true },
      ],
    });
    drawChart($('chart-time'), {
      title: 'Wall time per token (upload, dispatch, read back)',
      yLabel: 'ms',
      series: [
        { name: 'one-token call', color: '#ea580c', values: gpu.tokenMs },
        {
          name: 'whole sequence / T',
          color: '#0f766e',
          values: new Float64Array(T).fill(gpu.sequenceMs / T),
          dashed: true,
        },
      ],
    });
    this.status(lines.join('\n'));
  }
}
