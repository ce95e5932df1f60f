#!/usr/bin/env python3
"""Turns bench.py's raw timings into the results file: floors, throughput and ratios per case, a
table to print, the JSON, and the tokens/s plot. Pure Python, so it also runs without a GPU:

    python3 bench/gpu/report.py PART.json [PART.json ...] --out results.json --svg plot.svg

merges results files written by separate bench.py runs (e.g. one call per T on a device with a
per-call time limit) into one, after checking that they come from the same device.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import floors  # noqa: E402
import plot  # noqa: E402

# Every implementation a case may time, in plot order, with its label.
IMPLEMENTATIONS = {
    "tttc": "tttc CUDA kernel",
    "dual_form": "PyTorch dual form",
    "sdpa": "PyTorch SDPA (causal)",
}
# Configurations in table and plot order (floors.CONFIGS): f32 operands, tf32x3, bf16 operands,
# bf16 operands and I/O.
CONFIG_ORDER = {name: i for i, name in enumerate(floors.CONFIGS)}


def finish_case(case: dict, ceilings: dict, D: int, K: int) -> dict:
    """Adds floor, tokens_per_s and ratios to a case holding layer, dtype, BH, T, times
    ({implementation: {"median_ms": ...}}) and chain (the one-block timing, or None).

    tokens_per_s counts head-tokens, B·H·T per call, for every implementation alike. Ratios:
    speedup_vs_X = X's time / the kernel's; over_floor = the kernel's time / the floor."""
    times = {name: t["median_ms"] for name, t in case["times"].items()}
    chain = case.get("chain")
    case["floor"] = floors.floor(case["layer"], case["dtype"], D, K, case["BH"], case["T"], ceilings, chain["median_ms"] if chain else None)
    case["tokens_per_s"] = {name: case["BH"] * case["T"] / (ms * 1e-3) for name, ms in times.items()}
    ratios = {}
    if "tttc" in times:
        kernel = times["tttc"]
        ratios = {f"speedup_vs_{name}": ms / kernel for name, ms in times.items() if name != "tttc"}
        ratios["over_floor"] = kernel / case["floor"]["floor_ms"]
        ratios["over_hardware_floor"] = kernel / case["floor"]["hardware_ms"]
    case["ratios"] = ratios
    return case


def _ms(case: dict, name: str) -> str:
    t = case["times"].get(name)
    return f"{t['median_ms']:.3f}" if t else "-"


def _ratio(case: dict, name: str) -> str:
    r = case["ratios"].get(name)
    return f"{r:.2f}" if r is not None else "-"


def table(results: dict) -> str:
    """One line per case; ×dual and ×sdpa are speedups of the kernel, /floor its distance from the floor."""
    header = f"{'layer':6} {'dtype':7} {'B·H':>4} {'T':>6} | {'tttc ms':>9} {'dual ms':>9} {'sdpa ms':>9} | {'×dual':>7} {'×sdpa':>7} | {'floor ms':>9} {'bound':7} {'/floor':>7} {'/hw':>7} | {'err tttc':>8}"
    lines = [f"{results['device']}: D = {results['sizes']['D']}, K = {results['sizes']['K']}, {results['sizes']['heads']} heads", header, "-" * len(header)]
    for c in sorted(results["cases"], key=lambda c: (c["layer"], CONFIG_ORDER[c["dtype"]], c["BH"], c["T"])):
        err = c.get("errors", {}).get("tttc")
        lines.append(
            f"{c['layer']:6} {c['dtype']:7} {c['BH']:>4} {c['T']:>6} | {_ms(c, 'tttc'):>9} {_ms(c, 'dual_form'):>9} {_ms(c, 'sdpa'):>9} | "
            f"{_ratio(c, 'speedup_vs_dual_form'):>7} {_ratio(c, 'speedup_vs_sdpa'):>7} | {c['floor']['floor_ms']:>9.3f} {c['floor']['bound']:7} "
            f"{_ratio(c, 'over_floor'):>7} {_ratio(c, 'over_hardware_floor'):>7} | {'-' if err is None else f'{err:.1e}':>8}"
        )
        lines += [f"       {name}: {note}" for name, note in c.get("notes", {}).items()]
    return "\n".join(lines)


def write(results: dict, json_path: pathlib.Path, svg_path: pathlib.Path) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    svg_path.parent.mkdir(parents=True, exist_ok=True)
    svg_path.write_text(plot.tokens_per_second_svg(results, IMPLEMENTATIONS, CONFIG_ORDER))


def merge(parts: list[dict]) -> dict:
    devices = {p["device"] for p in parts}
    if len(devices) > 1:
        raise ValueError(f"results come from different devices: {sorted(devices)}")
    merged = {**parts[0], "cases": [c for p in parts for c in p["cases"]]}
    merged["sizes"] = {**parts[0]["sizes"], **{axis: sorted({n for p in parts for n in p["sizes"][axis]}) for axis in ("T", "BH")}}
    # Each case keeps the floors of the run that measured it; the ceilings of every run are listed.
    merged["ceilings_per_run"] = [p["ceilings"] for p in parts]
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="+", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, required=True, help="merged results JSON")
    parser.add_argument("--svg", type=pathlib.Path, required=True, help="tokens/s plot")
    args = parser.parse_args()
    results = merge([json.loads(p.read_text()) for p in args.parts])
    write(results, args.out, args.svg)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
