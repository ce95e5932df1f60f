#!/usr/bin/env python3
"""A dry run of bench/gpu/bench.py on the CPU, at toy sizes, so its orchestration (inputs,
rotation, error checks, chain, SDPA, the results file) is exercised before a GPU session pays
for it. What needs the GPU is stood in for: the generated kernel by dual_form.py in float64 (a
small, real error against the float32 reference; under bf16 I/O it takes bf16 views and stores a
bf16 output, checking the dtypes as the generated binding does), CUDA-event timing by a host clock, the
measured ceilings by constants, and SDPA by plain causal attention where PyTorch lacks it.

    python3 bench/gpu/check_bench_cpu.py                        # float64 stand-ins for the kernels
    python3 bench/gpu/check_bench_cpu.py --kernels build/bench-gpu  # the generated kernels themselves

With --kernels (from bench/gpu.sh --prepare), the generated bindings run as they are, on CPU
tensors through cuda-cpu (their CPU extensions built with TTTC_CUDA_CPU_INCLUDE, default this
repository's runtime/cuda-cpu/include): the tf32x3 kernels' tensor-core products emulated, the
bf16-io kernels taking bf16 views and returning a bf16 output, and each kernel's error is held to
bench.py's bounds.

Needs PyTorch (a CPU build will do); not part of the vitest suite. Exits 1 when it fails.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import types

import torch
import torch.nn.functional as F

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench" / "gpu"))
import bench  # noqa: E402
import dual_form  # noqa: E402
import floors  # noqa: E402


def stand_in_kernel(layer: str, config: str) -> types.SimpleNamespace:
    """The generated module's interface (names, sizes, dtypes, forward with out=) over dual_form in float64."""
    io = torch.bfloat16 if floors.CONFIGS[config].io_bytes == 2 else torch.float32
    names = {n: (bench.D,) for n in "kvq"}  # kernel order, as the generated VIEWS

    def forward(*, views, lr, scale, params, states, accums, start, out):
        assert start == 0 and all(a.abs().sum() == 0 for a in accums.values())
        assert all(views[n].dtype == io for n in names) and out[0].dtype == io and lr.dtype == torch.float32, "tensors in the dtypes the kernel stores"
        f64 = lambda t: t.double()  # noqa: E731
        got, final = dual_form.forward(layer, *(f64(views[n]) for n in "qkv"), f64(lr), f64(scale), f64(params["gamma"]), f64(params["beta"]), {n: f64(s) for n, s in states.items()})
        out[0].copy_(got)
        for n, s in final.items():
            out[1][n].copy_(s)
            out[2][n].zero_()
        return out

    states = floors.state_shapes(layer, bench.D)
    inputs = [io] * len(names) + [torch.float32] * (2 + 2 + 2 * len(states))  # lr, scale, params, states, accums
    outputs = [io] + [torch.float32] * 2 * len(states)
    return types.SimpleNamespace(K=bench.K, VIEWS=names, STATES=states, OUTPUT=(bench.D,), INPUT_DTYPES=inputs, OUTPUT_DTYPES=outputs, forward=forward)


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


def stand_in_dir(root: pathlib.Path) -> pathlib.Path:
    """Empty files where bench.py looks for the generated modules (the stand-ins replace them)."""
    for layer in floors.LAYERS:
        for config in bench.DTYPES:
            path = bench.kernels.module_path(root, layer, config)
            path.parent.mkdir(parents=True)
            path.touch()
    return root


def real_kernels_on_cpu() -> None:
    """The generated bindings as they are, their CPU extensions built through cuda-cpu."""
    os.environ.setdefault("TTTC_CUDA_CPU_INCLUDE", str(REPO / "runtime" / "cuda-cpu" / "include"))
    load = bench.kernels.load

    def build_all(paths):
        for path in paths:
            load(path)._cpu_extension()
            print(f"built {path} for the CPU", flush=True)

    bench.kernels.build_all = build_all


def stand_ins() -> None:
    bench.kernels.build_all = lambda paths: None
    bench.kernels.load = lambda path: stand_in_kernel(*path.parent.name.split("-", 1))


def dry_run(kernel_dir: pathlib.Path, out: pathlib.Path, sizes: list[str]) -> tuple[int, list[dict]]:
    sys.argv = ["bench.py", "--kernels", str(kernel_dir), "--out", str(out / "results.json"), *sizes, "--runs", "3", "--warmup", "1"]
    status = bench.main()
    return status, json.loads((out / "results.json").read_text())["cases"]


def check_cases(cases: list[dict], real: bool) -> list[str]:
    """Every case timed and checked; tf32x3 sharing the f32 case's dual form and SDPA, bf16-io
    the bf16 case's."""
    problems = []
    expected = len(floors.LAYERS) * len(bench.DTYPES) * 2 * 2
    if len(cases) != expected:
        problems.append(f"{len(cases)} cases, expected {expected}")
    by_key = {(c["layer"], c["dtype"], c["BH"], c["T"]): c for c in cases}
    timer = {}  # the first configuration with each baseline type times its dual form and SDPA
    for config in bench.DTYPES:
        timer.setdefault(floors.CONFIGS[config].baselines, config)
    for c in cases:
        name = f"{c['layer']} {c['dtype']} B·H={c['BH']} T={c['T']}"
        timed = timer[floors.CONFIGS[c["dtype"]].baselines]
        shared = c["dtype"] != timed
        if set(c["times"]) != {"tttc", "dual_form", "sdpa"} or c["chain"] is None or set(c["notes"]) != ({"dual_form", "sdpa"} if shared else set()):
            problems.append(f"{name}: times {sorted(c['times'])}, chain {c['chain']}, notes {c['notes']}")
        if shared:
            source = by_key[(c["layer"], timed, c["BH"], c["T"])]
            same_times = all(c["times"][n] == source["times"][n] for n in ("dual_form", "sdpa"))
            if not same_times or c["errors"].get("dual_form") != source["errors"].get("dual_form"):
                problems.append(f"{name}: the dual form and SDPA are not the {timed} case's")
        error = c["errors"]["tttc"]
        if real:  # the kernels' own rounding: bench.py's bounds
            within = 0 < error < bench.ERROR_BOUNDS[c["dtype"]]
        elif floors.CONFIGS[c["dtype"]].io_bytes == 2:  # views and output rounded to bf16 (2⁻⁸ each at most): a few 1e-3
            within = 1e-4 < error < bench.ERROR_BOUNDS["bf16-io"]
        else:  # float64 against float32
            within = 0 < error < 1e-5
        if not within:
            problems.append(f"{name}: the kernel differs from the float32 dual form by {error:.1e}")
        if c["dtype"] == "bf16" and not 1e-4 < c["errors"]["dual_form"] < 5e-2:
            problems.append(f"{name}: the bf16-autocast dual form differs from float32 by {c['errors']['dual_form']:.1e}")
    for config in bench.DTYPES:
        worst = max(c["errors"]["tttc"] for c in cases if c["dtype"] == config)
        print(f"     largest kernel error against the float32 dual form, {config}: {worst:.1e}")
    return problems


def check_memory_skip(kernel_dir: pathlib.Path, out: pathlib.Path) -> list[str]:
    """With room for everything but the bf16 copies of q, k, v, bf16-io is skipped with a note
    and the other configurations run."""
    float32_io = {d for d in bench.DTYPES if floors.CONFIGS[d].io_bytes == 4}
    room = bench.bytes_needed(16, 32, 3, False) / 0.9 + 1
    torch.cuda.mem_get_info = lambda: (room, 80 * 2**30)
    status, cases = dry_run(kernel_dir, out, ["--tokens", "32", "--heads", "16", "--layers", "linear"])
    skipped = {c["dtype"] for c in cases if "all" in c["notes"] and not c["times"]}
    ran = {c["dtype"] for c in cases if "tttc" in c["times"]}
    if status or skipped != {"bf16-io"} or ran != float32_io:
        return [f"short of memory for the bf16 copies: status {status}, skipped {sorted(skipped)}, ran {sorted(ran)}"]
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=pathlib.Path, help="kernels from bench/gpu.sh --prepare, run on the CPU through cuda-cpu (default: float64 stand-ins)")
    args = parser.parse_args()
    out = pathlib.Path(tempfile.mkdtemp(prefix="tttc-bench-cpu-"))
    if args.kernels:
        kernel_dir = args.kernels.resolve()
        real_kernels_on_cpu()
    else:
        kernel_dir = stand_in_dir(out / "kernels")
        stand_ins()
    bench.DEVICE = "cpu"
    bench.timing.time_ms = host_time_ms
    bench.timing.measure_ceilings = lambda runs, warmup: {"bandwidth_GBps": 3000.0, "matmul_TFLOPs": {"f32": 50.0, "tf32": 400.0, "bf16": 800.0}}
    bench.describe_device = lambda: {"device": "CPU, cuda-cpu kernels" if args.kernels else "CPU stand-in"}
    torch.cuda.is_available = lambda: True
    torch.cuda.mem_get_info = lambda: (64 * 2**30, 80 * 2**30)
    if not hasattr(F, "scaled_dot_product_attention"):
        F.scaled_dot_product_attention = causal_attention

    status, cases = dry_run(kernel_dir, out, ["--tokens", "32", "64", "--heads", "16", "32"])
    problems = check_cases(cases, real=bool(args.kernels))
    problems += check_memory_skip(kernel_dir, out / "short-of-memory")
    print("\n".join(problems) if problems else f"ok   bench.py's dry run wrote {len(cases)} cases to {out}; bf16-io skipped, with a note, where its copies do not fit")
    return 1 if status or problems else 0


if __name__ == "__main__":
    sys.exit(main())
