#!/usr/bin/env python3
"""A dry run of bench/gpu/bench.py on the CPU, at toy sizes, so its orchestration (inputs,
rotation, error checks, chain, SDPA, the results file) is exercised before a GPU session pays
for it. What needs the GPU is stood in for: the generated kernel by dual_form.py in float64 (a
small, real error against the float32 reference), CUDA-event timing by a host clock, the
measured ceilings by constants, and SDPA by plain causal attention where PyTorch lacks it.

    python3 bench/gpu/check_bench_cpu.py

Needs PyTorch (a CPU build will do); not part of the vitest suite. Exits 1 when it fails.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys
import tempfile
import time
import types

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import bench  # noqa: E402
import dual_form  # noqa: E402
import floors  # noqa: E402


def stand_in_kernel(layer: str) -> types.SimpleNamespace:
    """The generated module's interface (names, sizes, forward with out=) over dual_form in float64."""

    def forward(*, views, lr, scale, params, states, accums, start, out):
        assert start == 0 and all(a.abs().sum() == 0 for a in accums.values())
        f64 = lambda t: t.double()  # noqa: E731
        got, final = dual_form.forward(layer, *(f64(views[n]) for n in "qkv"), f64(lr), f64(scale), f64(params["gamma"]), f64(params["beta"]), {n: f64(s) for n, s in states.items()})
        out[0].copy_(got)
        for n, s in final.items():
            out[1][n].copy_(s)
            out[2][n].zero_()
        return out

    return types.SimpleNamespace(K=bench.K, VIEWS={n: (bench.D,) for n in "kvq"}, STATES=floors.state_shapes(layer, bench.D), OUTPUT=(bench.D,), forward=forward)


def host_time_ms(call, copies, runs, warmup):
    for i in range(warmup):
        call(i % copies)
    times = []
    for i in range(runs):
        began = time.perf_counter()
        call((warmup + i) % copies)
        times.append((time.perf_counter() - began) * 1e3)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": runs}


def causal_attention(q, k, v, is_causal):
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    T = q.shape[-2]
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def main() -> int:
    out = pathlib.Path(tempfile.mkdtemp(prefix="tttc-bench-cpu-"))
    kernel_dir = out / "kernels"
    for layer in floors.LAYERS:
        for dtype in bench.DTYPES:
            path = bench.kernels.module_path(kernel_dir, layer, dtype)
            path.parent.mkdir(parents=True)
            path.touch()
    bench.DEVICE = "cpu"
    bench.timing.time_ms = host_time_ms
    bench.timing.measure_ceilings = lambda runs, warmup: {"bandwidth_GBps": 3000.0, "matmul_TFLOPs": {"f32": 50.0, "bf16": 800.0}}
    bench.kernels.build_all = lambda paths: None
    bench.kernels.load = lambda path: stand_in_kernel(path.parent.name.split("-")[0])
    bench.describe_device = lambda: {"device": "CPU stand-in"}
    torch.cuda.is_available = lambda: True
    torch.cuda.mem_get_info = lambda: (64 * 2**30, 80 * 2**30)
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = causal_attention
    sys.argv = ["bench.py", "--kernels", str(kernel_dir), "--out", str(out / "results.json"), "--tokens", "32", "64", "--heads", "16", "32", "--runs", "3", "--warmup", "1"]
    status = bench.main()

    results = json.loads((out / "results.json").read_text())
    cases = results["cases"]
    problems = []
    if len(cases) != 2 * 2 * 2 * 2:
        problems.append(f"{len(cases)} cases, expected 16")
    for c in cases:
        name = f"{c['layer']} {c['dtype']} B·H={c['BH']} T={c['T']}"
        if set(c["times"]) != {"tttc", "dual_form", "sdpa"} or c["chain"] is None or c["notes"]:
            problems.append(f"{name}: times {sorted(c['times'])}, chain {c['chain']}, notes {c['notes']}")
        if not 0 < c["errors"]["tttc"] < 1e-5:
            problems.append(f"{name}: the float64 stand-in differs from the float32 reference by {c['errors']['tttc']:.1e}")
        if c["dtype"] == "bf16" and not 1e-4 < c["errors"]["dual_form"] < 5e-2:
            problems.append(f"{name}: the bf16-autocast dual form differs from float32 by {c['errors']['dual_form']:.1e}")
    print("\n".join(problems) if problems else f"ok   bench.py's dry run wrote {len(cases)} cases to {out}")
    return 1 if status or problems else 0


if __name__ == "__main__":
    sys.exit(main())
