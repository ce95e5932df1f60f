#!/usr/bin/env python3
"""Runs the GPU benchmark's pure-Python half (floors, ratios, table, JSON, merge, SVG) on made-up
timings, so it can be checked on a machine without a GPU or PyTorch:

    python3 bench/gpu/check_report.py [OUT_DIR]

Checks a few floors worked out by hand, that the SVG parses as XML, and writes results.json and
tokens-per-second.svg to OUT_DIR (default: a temporary folder) for a look. Not part of the vitest
suite. Exits 1 when a check fails.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import floors  # noqa: E402
import report  # noqa: E402

D, K = 64, 16
CEILINGS = {"bandwidth_GBps": 3000.0, "matmul_TFLOPs": {"f32": 50.0, "tf32": 400.0, "bf16": 800.0}}
PANELS = len(floors.LAYERS) * len(floors.CONFIGS) * 2  # layers × configurations × B·H


def fake_results(tokens: list[int]) -> dict:
    """Every case at the given T with invented times that grow with the work, SDPA skipped once."""
    cases = []
    for layer in floors.LAYERS:
        for dtype in floors.CONFIGS:
            for BH in (64, 512):
                for T in tokens:
                    work = BH * T * (1 if layer == "linear" else 8) * 1e-6
                    times = {"tttc": 0.5 * work + 0.02 * T / K, "dual_form": 40 * work + 0.3 * T / K, "sdpa": 1e-5 * BH * T * T / 1024}
                    case = {"layer": layer, "dtype": dtype, "B": BH // 16, "H": 16, "BH": BH, "T": T, "times": {n: {"median_ms": ms, "min_ms": ms, "max_ms": ms, "runs": 20} for n, ms in times.items()}, "chain": {"median_ms": 0.02 * T / K}, "errors": {"tttc": 2e-6}, "notes": {}}
                    if (BH, T) == (512, 32768) and dtype == "f32":
                        del case["times"]["sdpa"]
                        case["notes"]["sdpa"] = "skipped: out of device memory"
                    cases.append(report.finish_case(case, CEILINGS, D, K))
    return {"device": "Fake GPU", "sizes": {"D": D, "K": K, "heads": 16, "T": tokens, "BH": [64, 512]}, "ceilings": CEILINGS, "cases": cases}


def check(condition: bool, message: str, failures: list[str]) -> None:
    print(f"{'ok' if condition else 'FAIL':4} {message}")
    if not condition:
        failures.append(message)


def main() -> int:
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(tempfile.mkdtemp(prefix="tttc-bench-"))
    failures: list[str] = []

    # TTT-Linear, B·H = 64, T = 2048: per head 2048 tokens × (q, k, v, lr, out = 257 floats) and the
    # state (64·64 + 64 floats) read and written; 3D² + 3KD multiply-adds per token.
    f = floors.floor("linear", "f32", D, K, 64, 2048, CEILINGS, 2.0)
    check(f["bytes"] == 64 * 4 * (2048 * 257 + 2 * 4160), f"linear bytes {f['bytes']}", failures)
    check(f["flops"] == 2 * (3 * D * D + 3 * K * D) * 64 * 2048, f"linear FLOPs {f['flops']}", failures)
    check(math.isclose(f["memory_ms"], f["bytes"] / 3e12 * 1e3) and math.isclose(f["compute_ms"], f["flops"] / 50e12 * 1e3), "memory and compute bounds divide by the ceilings", failures)
    check(f["bound"] == "chain" and f["floor_ms"] == 2.0, "a measured chain above both bounds sets the floor", failures)
    check(floors.macs_per_token("mlp", D, K) == 28 * D * D + 15 * K * D, "TTT-MLP: 28D² + 15KD multiply-adds per token", failures)
    # bf16 I/O: q, k, v and the output at 2 bytes (4·64·2 = 512 B a token), lr and the state at 4;
    # the compute bound at the bf16 operand rate, as for bf16 operands with float32 I/O.
    io = floors.floor("linear", "bf16-io", D, K, 64, 2048, CEILINGS, None)
    check(io["bytes"] == 64 * (2048 * (256 * 2 + 4) + 2 * 4160 * 4), f"linear bf16-io bytes {io['bytes']}", failures)
    bf16 = floors.floor("linear", "bf16", D, K, 64, 2048, CEILINGS, None)
    check(io["compute_ms"] == bf16["compute_ms"] and io["memory_ms"] < bf16["memory_ms"], "bf16-io: the bf16 compute bound, a lower memory bound", failures)
    # tf32x3: f32's bytes; three tf32 matmuls per product, so a third of the tf32 rate.
    x3 = floors.floor("linear", "tf32x3", D, K, 64, 2048, CEILINGS, None)
    check(x3["bytes"] == f["bytes"] and x3["flops"] == f["flops"], "tf32x3: f32's bytes and FLOPs", failures)
    check(math.isclose(x3["compute_ms"], x3["flops"] / (400e12 / 3) * 1e3), "tf32x3: the compute bound at a third of the tf32 rate", failures)
    g = floors.floor("mlp", "bf16", D, K, 512, 32768, CEILINGS, None)
    check("chain_ms" not in g and g["floor_ms"] == max(g["memory_ms"], g["compute_ms"]), "without a chain, the floor is the larger hardware bound", failures)

    short, long = fake_results([2048, 8192]), fake_results([32768])
    for results, name in ((short, "part-1.json"), (long, "part-2.json")):
        report.write(results, out / name, out / f"{name}.svg")
    merged = report.merge([json.loads((out / n).read_text()) for n in ("part-1.json", "part-2.json")])
    report.write(merged, out / "results.json", out / "tokens-per-second.svg")
    check(len(merged["cases"]) == PANELS * 3 and merged["sizes"]["T"] == [2048, 8192, 32768], "merge joins the parts' cases and sizes", failures)
    case = merged["cases"][0]
    check(math.isclose(case["ratios"]["speedup_vs_dual_form"], case["times"]["dual_form"]["median_ms"] / case["times"]["tttc"]["median_ms"]), "speedup = other's time / the kernel's", failures)
    check(math.isclose(case["tokens_per_s"]["tttc"], case["BH"] * case["T"] / (case["times"]["tttc"]["median_ms"] * 1e-3)), "tokens/s = B·H·T / time", failures)
    svg = ET.parse(out / "tokens-per-second.svg").getroot()
    lines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    check(len(lines) == PANELS * 4, f"SVG parses; {len(lines)} lines in {PANELS} panels (tttc, dual form, SDPA, floor)", failures)
    try:
        report.merge([short, {**long, "device": "Other GPU"}])
        check(False, "merge refuses results from two devices", failures)
    except ValueError:
        check(True, "merge refuses results from two devices", failures)
    print(report.table(merged))
    print(f"wrote {out / 'results.json'} and {out / 'tokens-per-second.svg'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
