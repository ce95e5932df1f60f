/** Small SVG line charts over the token index: no library, no network. */

export interface Series {
  name: string;
  color: string;
  values: ArrayLike<number>;
  /** Draw as a dashed line. */
  dashed?: boolean;
  /** Also draw the running mean over this many tokens, bold, over the faint raw values. */
  smooth?: number;
}

export interface ChartSpec {
  title: string;
  yLabel: string;
  series: Series[];
  /** A logarithmic y axis (for errors spanning decades). */
  log?: boolean;
}

const SVG = 'http://www.w3.org/2000/svg';
const W = 560;
const H = 220;
const M = { left: 56, right: 12, top: 40, bottom: 34 };

function el<K extends keyof SVGElementTagNameMap>(
  name: K,
  attrs: Record<string, string | number>,
  text?: string,
): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** 1, 2, 5 × 10^k steps, about `count` of them over [lo, hi]. */
function ticks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const format = (v: number) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(0) : String(v));

/** Draw the chart into `host`, replacing what was there. Non-finite values (and ≤ 0 on a log axis) leave gaps. */
export function drawChart(host: HTMLElement, spec: ChartSpec): void {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': spec.title, class: 'chart' });
  const n = Math.max(0, ...spec.series.map((s) => s.values.length));
  const f = spec.log ? (v: number) => (v > 0 ? Math.log10(v) : Number.NaN) : (v: number) => v;
  const all = spec.series.flatMap((s) => Array.from(s.values, f)).filter(Number.isFinite);
  let lo = all.length ? Math.min(...all) : 0;
  let hi = all.length ? Math.max(...all) : 1;
  if (spec.log) {
    lo = Math.floor(lo);
    hi = Math.max(Math.ceil(hi), lo + 1);
  } else if (hi === lo) {
    hi = lo + 1;
  }
  if (!spec.log && lo > 0 && lo < 0.5 * hi) lo = 0;
  const x = (i: number) => M.left + ((W - M.left - M.right) * i) / Math.max(1, n - 1);
  const y = (v: number) => H - M.bottom - ((H - M.top - M.bottom) * (v - lo)) / (hi - lo);

  svg.append(el('text', { x: M.left, y: 16, class: 'chart-title' }, spec.title));
  const yTicks = spec.log ? ticks(lo, hi, Math.min(5, hi - lo)).filter(Number.isInteger) : ticks(lo, hi, 4);
  for (const t of yTicks) {
    svg.append(el('line', { x1: M.left, x2: W - M.right, y1: y(t), y2: y(t), class: 'grid' }));
    svg.append(
      el('text', { x: M.left - 6, y: y(t) + 4, class: 'tick', 'text-anchor': 'end' }, spec.log ? `1e${t}` : format(t)),
    );
  }
  for (const t of ticks(0, Math.max(1, n - 1), 6).filter(Number.isInteger)) {
    svg.append(el('text', { x: x(t), y: H - M.bottom + 14, class: 'tick', 'text-anchor': 'middle' }, String(t)));
  }
  svg.append(el('text', { x: (W + M.left) / 2, y: H - 4, class: 'axis', 'text-anchor': 'middle' }, 'token'));
  svg.append(
    el(
      'text',
      {
        x: 12,
        y: (H - M.bottom + M.top) / 2,
        class: 'axis',
        'text-anchor': 'middle',
        transform: `rotate(-90 12 ${(H - M.bottom + M.top) / 2})`,
      },
      spec.yLabel,
    ),
  );

  let legendX = M.left;
  for (const s of spec.series) {
    svg.append(el('text', { x: legendX, y: 30, class: 'legend', fill: s.color }, `— ${s.name}`));
    legendX += 24 + 6 * s.name.length;
  }
  const line = (values: ArrayLike<number>): { d: string; points: number } => {
    let d = '';
    let points = 0;
    let pen = false;
    for (let i = 0; i < values.length; i++) {
      const v = f(values[i]);
      if (!Number.isFinite(v)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)} ${y(v).toFixed(1)}`;
      pen = true;
      points++;
    }
    return { d, points };
  };
  for (const s of spec.series) {
    const raw = line(s.values);
    const path = el('path', {
      d: raw.d,
      stroke: s.color,
      class: 'series',
      'data-series': s.name,
      'data-points': raw.points,
    });
    if (s.dashed) path.setAttribute('stroke-dasharray', '4 3');
    if (s.smooth) path.setAttribute('stroke-opacity', '0.35');
    svg.append(path);
    if (s.smooth) {
      const mean = line(runningMean(s.values, s.smooth));
      svg.append(
        el('path', { d: mean.d, stroke: s.color, class: 'series smooth', 'data-series': `${s.name} (running mean)` }),
      );
    }
  }
  host.replaceChildren(svg);
}

/** The mean of each value and the `window − 1` before it (fewer at the start). */
function runningMean(values: ArrayLike<number>, window: number): Float64Array {
  const out = new Float64Array(values.length);
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    if (i >= window) sum -= values[i - window];
    out[i] = sum / Math.min(i + 1, window);
  }
  return out;
}
