"""The tokens/s-against-T plot of a results file, as an SVG written by hand (no matplotlib on the
path from GPU run to commit). One panel per (layer, dtype, B·H); in each, one line per
implementation and the floor dashed; both axes logarithmic, the y axis shared by all panels."""

from __future__ import annotations

import math
from html import escape

PANEL_W, PANEL_H = 250, 190
MARGIN_L, MARGIN_T, MARGIN_B, GAP = 58, 26, 34, 14
LEGEND_H = 44
COLORS = {"tttc": "#d62728", "dual_form": "#1f77b4", "sdpa": "#2ca02c", "floor": "#555555"}
LAYER_NAMES = {"linear": "TTT-Linear", "mlp": "TTT-MLP"}


def _tokens(T: int) -> str:
    return f"{T // 1024}k" if T % 1024 == 0 else str(T)


def _series(cases: list[dict], implementations: dict) -> dict[str, list[tuple[int, float]]]:
    """(T, tokens/s) points per line of one panel, the floor's as the throughput it allows."""
    lines = {name: [] for name in [*implementations, "floor"]}
    for c in sorted(cases, key=lambda c: c["T"]):
        for name, rate in c["tokens_per_s"].items():
            lines[name].append((c["T"], rate))
        lines["floor"].append((c["T"], c["BH"] * c["T"] / (c["floor"]["floor_ms"] * 1e-3)))
    return {name: points for name, points in lines.items() if points}


def tokens_per_second_svg(results: dict, implementations: dict, config_order: dict) -> str:
    """config_order: each configuration's (dtype's) column position, f32 first."""
    cases = results["cases"]
    layers = sorted({c["layer"] for c in cases})
    columns = sorted({(c["dtype"], c["BH"]) for c in cases}, key=lambda k: (config_order[k[0]], k[1]))
    panels = {(c["layer"], c["dtype"], c["BH"]) for c in cases}
    Ts = sorted({c["T"] for c in cases})
    series = {key: _series([c for c in cases if (c["layer"], c["dtype"], c["BH"]) == key], implementations) for key in panels}
    rates = [r for lines in series.values() for points in lines.values() for _, r in points]
    y_lo, y_hi = math.floor(math.log10(min(rates))), math.ceil(math.log10(max(rates)))
    y_hi += y_hi == y_lo
    x_lo, x_hi = math.log2(Ts[0]), math.log2(Ts[-1])

    cell_w, cell_h = MARGIN_L + PANEL_W + GAP, MARGIN_T + PANEL_H + MARGIN_B
    width, height = len(columns) * cell_w + GAP, LEGEND_H + len(layers) * cell_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{GAP}" y="16" font-size="13">{escape(results["device"])}: head-tokens/s (B·H·T per call) against T; D = {results["sizes"]["D"]}, K = {results["sizes"]["K"]}</text>',
    ]
    legend = [*implementations.items(), ("floor", "floor (max of memory, compute, chain)")]
    used = {name for lines in series.values() for name in lines}
    x = GAP
    for name, label in (item for item in legend if item[0] in used):
        dash = ' stroke-dasharray="5,3"' if name == "floor" else ""
        out.append(f'<line x1="{x}" y1="32" x2="{x + 22}" y2="32" stroke="{COLORS[name]}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{x + 27}" y="36">{escape(label)}</text>')
        x += 40 + 6.2 * len(label)

    for row, layer in enumerate(layers):
        for col, (dtype, BH) in enumerate(columns):
            if (layer, dtype, BH) not in series:
                continue
            left, top = col * cell_w + MARGIN_L, LEGEND_H + row * cell_h + MARGIN_T

            def px(T: int) -> float:
                return left + (math.log2(T) - x_lo) / ((x_hi - x_lo) or 1) * PANEL_W

            def py(rate: float) -> float:
                return top + PANEL_H - (math.log10(rate) - y_lo) / (y_hi - y_lo) * PANEL_H

            out.append(f'<rect x="{left}" y="{top}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/>')
            out.append(f'<text x="{left + PANEL_W / 2}" y="{top - 8}" text-anchor="middle">{LAYER_NAMES.get(layer, layer)}, {dtype}, B·H = {BH}</text>')
            for e in range(y_lo, y_hi + 1):
                y = py(10.0**e)
                out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + PANEL_W}" y2="{y:.1f}" stroke="#e5e5e5"/>')
                out.append(f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>')
            for T in Ts:
                out.append(f'<text x="{px(T):.1f}" y="{top + PANEL_H + 15}" text-anchor="middle">{_tokens(T)}</text>')
            out.append(f'<text x="{left + PANEL_W / 2}" y="{top + PANEL_H + 29}" text-anchor="middle" fill="#666">T</text>')
            for name, points in series[(layer, dtype, BH)].items():
                coords = " ".join(f"{px(T):.1f},{py(r):.1f}" for T, r in points)
                dash = ' stroke-dasharray="5,3"' if name == "floor" else ""
                out.append(f'<polyline points="{coords}" fill="none" stroke="{COLORS[name]}" stroke-width="2"{dash}/>')
                out += [f'<circle cx="{px(T):.1f}" cy="{py(r):.1f}" r="2.5" fill="{COLORS[name]}"/>' for T, r in points]
    out.append("</svg>")
    return "\n".join(out) + "\n"
