#!/usr/bin/env python3
"""Times tttc's generated CUDA kernels for TTT-Linear and TTT-MLP on one GPU, side by side with the
paper's dual form in plain PyTorch (bench/gpu/dual_form.py) and PyTorch's causal scaled-dot-product
attention, and sets each kernel against its floor (bench/gpu/floors.py).

    python3 bench/gpu/bench.py --kernels DIR --out results.json [--svg plot.svg]
        [--layers linear mlp] [--dtypes f32 f32-128 tf32x3 bf16 bf16-io] [--tokens 2048 8192 32768]
        [--heads 64 512] [--runs 20] [--warmup 3] [--copies 3]

DIR holds the kernels `bench/gpu.sh --prepare DIR` generates; bench/gpu.sh runs both steps.
Sizes: D = 64, K = 16, 16 heads (B = B·H / 16). Configurations (floors.CONFIGS):
- f32: the kernel with f32 matmul operands; the dual form and SDPA in float32, TF32 off.
- f32-128: the same in blocks of 128 threads (--threads 128), which the scheduler's model rates
  a few percent faster than its choice of 256, within its margin; its dual form and SDPA are the
  f32 case's, not timed twice.
- tf32x3: the kernel with f32 operands on tf32 tensor cores (--dtype tf32x3: each operand split
  into a high and a low tf32 part, three mma per step), as accurate as f32; float32 tensors. Its
  dual form and SDPA are the f32 case's, not timed twice.
- bf16: the kernel with bf16 matmul operands (its tensors stay float32: the binding takes
  float32 and keeps f32 state and accumulation); the dual form under torch.autocast(bfloat16),
  as a PyTorch user would run it; SDPA on bfloat16 q, k, v.
- bf16-io: the kernel with bf16 matmul operands and bf16 views and output in device memory
  (--io bf16), fed bf16 copies of the same q, k, v (rounded once, before any timing); lr, state
  and accumulation stay float32. Its dual form and SDPA are the bf16 case's, not timed twice.
Each output is checked against the float32 dual form on the same (unrounded) inputs (relative
error).
The results file is rewritten after every (B·H, T), so a run cut short keeps what it finished.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import dual_form  # noqa: E402
import floors  # noqa: E402
import kernels  # noqa: E402
import report  # noqa: E402
import timing  # noqa: E402

D, K, HEADS = 64, 16, 16
DEVICE = "cuda"  # check_bench_cpu.py runs this file's orchestration on "cpu"
BASE_LR = {"linear": 1.0, "mlp": 0.1}  # the paper's inner learning rates (semantics.md §1)
# In this order: the configurations with f32 baselines before the bf16 ones, whose SDPA may convert
# the shared inputs in place.
DTYPES = tuple(floors.CONFIGS)
# Above these, a relative error against the f32 dual form is flagged (METHOD.md: f32 lands far
# under 1e-3, bf16 operands between 1e-3 and 1e-2; a long sequence compounds rounding). tf32x3
# has f32's bound: it must be as accurate as f32. bf16 I/O adds two roundings to bf16
# (8 significant bits, each off by up to 2⁻⁸ ≈ 3.9e-3 relative):
# q, k, v on the way in (the bf16 kernel already rounds them where they are matmul operands;
# what is new is their elementwise uses, e.g. the reconstruction target) and the output on the
# way out (at most 2⁻⁸ of its norm). Hence the bf16 bound plus 2 · 2⁻⁸, rounded up.
ERROR_BOUNDS = {"f32": 1e-3, "f32-128": 1e-3, "tf32x3": 1e-3, "bf16": 5e-2, "bf16-io": 6e-2}


@dataclasses.dataclass
class Workload:
    """One layer's inputs for one (B, H, T): q, k, v and lr per input copy, shared parameters and
    initial state, as random as a trained model's (nothing zero: zeros hide unwritten outputs).
    rounded: the bf16 copies of q, k, v per input copy, for kernels that store views as bf16
    (empty when no such kernel runs)."""

    layer: str
    views: list[dict[str, torch.Tensor]]
    rounded: list[dict[str, torch.Tensor]]
    lrs: list[torch.Tensor]
    scale: torch.Tensor
    params: dict[str, torch.Tensor]
    states: dict[str, torch.Tensor]

    def kernel(self, module, i: int, accums: dict, out: tuple) -> None:
        """One call, each view in the dtype the kernel stores it in (no conversion timed)."""
        stored = {torch.float32: self.views, torch.bfloat16: self.rounded}
        views = {n: stored[dtype][i][n] for n, dtype in kernels.view_dtypes(module).items()}
        module.forward(views=views, lr=self.lrs[i], scale=self.scale, params=self.params, states=self.states, accums=accums, start=0, out=out)

    def dual_form(self, i: int, out: torch.Tensor, bf16: bool) -> None:
        v = self.views[i]
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=bf16):
            dual_form.forward(self.layer, v["q"], v["k"], v["v"], self.lrs[i], self.scale, self.params["gamma"], self.params["beta"], self.states, out=out)

    def one_block(self) -> Workload:
        """The first (sequence, head) alone: one block of the kernel, to time the sequential chain."""
        one = lambda t: t[:1, :1].contiguous()  # noqa: E731
        first = lambda copies: [{n: one(t) for n, t in v.items()} for v in copies]  # noqa: E731
        return Workload(self.layer, first(self.views), first(self.rounded), [one(t) for t in self.lrs], self.scale, {n: p[:1].contiguous() for n, p in self.params.items()}, {n: one(s) for n, s in self.states.items()})


def random_views(B: int, H: int, T: int, copies: int) -> list[dict[str, torch.Tensor]]:
    """q, k, v standard normal, and gate = σ(·)/D, the layer-independent part of lr_t."""
    return [{**{n: torch.randn(B, H, T, D, device=DEVICE) for n in ("q", "k", "v")}, "gate": torch.sigmoid(torch.randn(B, H, T, device=DEVICE)) / D} for _ in range(copies)]


def rounded_views(views: list[dict]) -> list[dict[str, torch.Tensor]]:
    """q, k, v of each input copy rounded to bfloat16, as a model with bf16 activations holds them."""
    return [{n: v[n].to(torch.bfloat16) for n in ("q", "k", "v")} for v in views]


def workload(layer: str, views: list[dict], rounded: list[dict], scale: torch.Tensor) -> Workload:
    B, H = views[0]["q"].shape[:2]
    params = {"gamma": 1 + 0.1 * torch.randn(H, D, device=DEVICE), "beta": 0.1 * torch.randn(H, D, device=DEVICE)}
    states = {n: 0.02 * torch.randn(B, H, *s, device=DEVICE) for n, s in floors.state_shapes(layer, D).items()}
    return Workload(layer, views, rounded, [BASE_LR[layer] * v["gate"] for v in views], scale, params, states)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """‖got − want‖ / ‖want‖ in float64, one sequence at a time: a float64 copy of a whole
    output would not fit beside the inputs at the largest sizes."""
    diff = sum((g.double() - w.double()).square().sum() for g, w in zip(got, want))
    norm = sum(w.double().square().sum() for w in want)
    return (diff / norm).sqrt().item()


def bytes_needed(BH: int, T: int, copies: int, rounded: bool) -> int:
    """Device memory a (B·H, T) group holds at its peak: the input copies (and their bf16 q, k, v
    when rounded), four float32 [B, H, T, D] outputs (kernel, dual form, its f32 reference, SDPA)
    and the dual form's E matrices."""
    return BH * T * (4 * copies * (3 * D + 1) + 2 * copies * 3 * D * rounded + 4 * (4 * D + K))


def attempt(case: dict, name: str, measure):
    """measure(), or None with a note in the case when the device runs out of memory."""
    try:
        return measure()
    except torch.cuda.OutOfMemoryError:
        case["notes"][name] = "skipped: out of device memory"
        torch.cuda.empty_cache()
        return None


def baselines(case: dict) -> str:
    """The type the case's dual form and SDPA run in; cases with the same one share them."""
    return floors.CONFIGS[case["dtype"]].baselines


def shared_note(timed: dict) -> str:
    """The note on a case that shows timed's dual form or SDPA instead of timing its own."""
    return f"the {timed['dtype']} case's (the same {baselines(timed)} baselines), not timed again"


def measure_layer(case: dict, module, w: Workload, reference: torch.Tensor, args, dual: bool) -> None:
    """Times the kernel, and the dual form when dual, for one case, then checks both outputs on copy 0."""
    B, H, T, bf16 = case["B"], case["H"], case["T"], baselines(case) == "bf16"
    accums = {n: torch.zeros(B, H, *s, device=DEVICE) for n, s in module.STATES.items()}  # start = 0: nothing accumulated
    out = kernels.outputs(module, B, H, T, DEVICE)
    runs = {"tttc": (lambda i: w.kernel(module, i, accums, out), out[0])}
    if dual:
        dual_out = torch.empty(B, H, T, D, device=DEVICE)
        runs["dual_form"] = (lambda i: w.dual_form(i, dual_out, bf16), dual_out)
    for name, (call, result) in runs.items():
        t = attempt(case, name, lambda: timing.time_ms(call, args.copies, args.runs, args.warmup))
        if t is None:
            continue
        case["times"][name] = t
        if name == "tttc" or bf16:  # the f32 dual form is the reference itself
            result.fill_(float("nan"))
            call(0)
            case["errors"][name] = relative_error(result, reference)
        error = case["errors"].get(name)
        print(f"  {case['layer']:6} {case['dtype']:7} B·H={case['BH']:<4} T={T:<6} {name:9} {t['median_ms']:10.3f} ms  error {'-' if error is None else f'{error:.1e}'}", flush=True)


def measure_chain(module, w: Workload, args) -> dict:
    one = w.one_block()
    accums = {n: torch.zeros(1, 1, *s, device=DEVICE) for n, s in module.STATES.items()}
    out = kernels.outputs(module, 1, 1, one.views[0]["q"].shape[2], DEVICE)
    return timing.time_ms(lambda i: one.kernel(module, i, accums, out), args.copies, args.runs, args.warmup)


def share_dual_form(case: dict, timed: dict) -> None:
    """The dual form of a case with the same layer and baselines as timed, copied rather than timed again."""
    for part in ("times", "errors"):
        if "dual_form" in timed[part]:
            case[part]["dual_form"] = timed[part]["dual_form"]
    case["notes"]["dual_form"] = timed["notes"].get("dual_form", shared_note(timed))


def measure_sdpa(cases: list[dict], views: list[dict], rounded: list[dict], args) -> None:
    """Causal attention over the same q, k, v ([B, H, T, 64]) once per baseline type (float32 or
    bf16), shared by the cases with those baselines."""
    for dtype in dict.fromkeys(baselines(c) for c in cases):
        of_dtype = [c for c in cases if baselines(c) == dtype]
        if dtype == "bf16" and not rounded:
            for v in views:  # in place, freeing each float32 tensor as its copy is made
                v.update(rounded_views([v])[0])
        inputs = rounded if dtype == "bf16" and rounded else views
        t = attempt(of_dtype[0], "sdpa", lambda: timing.time_ms(lambda i: F.scaled_dot_product_attention(inputs[i]["q"], inputs[i]["k"], inputs[i]["v"], is_causal=True), args.copies, args.runs, args.warmup))
        for c in of_dtype:
            if t is None:
                c["notes"]["sdpa"] = of_dtype[0]["notes"]["sdpa"]
            else:
                c["times"]["sdpa"] = t
            if c["dtype"] != of_dtype[0]["dtype"]:
                c["notes"].setdefault("sdpa", shared_note(of_dtype[0]))
        if t is not None:
            print(f"  sdpa   {dtype:7} B·H={of_dtype[0]['BH']:<4} T={of_dtype[0]['T']:<6} {'':9} {t['median_ms']:10.3f} ms", flush=True)


def skip(cases: list[dict], why: str) -> None:
    for c in cases:
        c["notes"]["all"] = f"skipped: {why}"
        print(f"  {c['layer']:6} {c['dtype']:7} B·H={c['BH']:<4} T={c['T']:<6} skipped: {why}", flush=True)


def run_group(BH: int, T: int, modules: dict, chains: dict, args) -> list[dict]:
    """Every case of one (B·H, T): both layers and all configurations share one set of input copies."""
    B, H = BH // HEADS, HEADS
    cases = [{"layer": l, "dtype": d, "B": B, "H": H, "BH": BH, "T": T, "times": {}, "chain": None, "errors": {}, "notes": {}} for l in args.layers for d in args.dtypes]
    io_bf16 = [c for c in cases if floors.CONFIGS[c["dtype"]].io_bytes == 2]
    torch.cuda.empty_cache()
    free = torch.cuda.mem_get_info()[0]
    if io_bf16 and bytes_needed(BH, T, args.copies, True) > 0.9 * free:
        skip(io_bf16, f"its bf16 copies of q, k, v need about {bytes_needed(BH, T, args.copies, True) / 2**30:.1f} GiB in all, {free / 2**30:.1f} GiB free")
        io_bf16 = []
    need = bytes_needed(BH, T, args.copies, bool(io_bf16))
    if need > 0.9 * free:
        skip([c for c in cases if "all" not in c["notes"]], f"needs about {need / 2**30:.0f} GiB, {free / 2**30:.0f} GiB free")
        return cases
    running = [c for c in cases if "all" not in c["notes"]]
    scale = torch.tensor([1.0 / (i + 1) for i in range(K)], device=DEVICE)  # the learned offset at its initial 0
    views = random_views(B, H, T, args.copies)
    rounded = rounded_views(views) if io_bf16 else []  # once per copy, before any timing
    for layer in args.layers:
        w = workload(layer, views, rounded, scale)
        reference = torch.empty(B, H, T, D, device=DEVICE)
        w.dual_form(0, reference, bf16=False)
        of_layer = [c for c in running if c["layer"] == layer]
        for c in of_layer:
            module = modules[(layer, c["dtype"])]
            timed = next(o for o in of_layer if baselines(o) == baselines(c))  # the first with these baselines times the dual form
            measure_layer(c, module, w, reference, args, dual=timed is c)
            if timed is not c:
                share_dual_form(c, timed)
            key = (layer, c["dtype"], T)
            if key not in chains:
                chains[key] = attempt(c, "chain", lambda: measure_chain(module, w, args))
            c["chain"] = chains[key]
        del w, reference
    torch.cuda.empty_cache()
    measure_sdpa(running, views, rounded, args)
    return cases


def describe_device() -> dict:
    p = torch.cuda.get_device_properties(0)
    return {
        "device": torch.cuda.get_device_name(),
        "capability": f"sm_{p.major}{p.minor}",
        "multiprocessors": p.multi_processor_count,
        "memory_GiB": round(p.total_memory / 2**30, 1),
        "l2_MB": round(getattr(p, "L2_cache_size", 0) / 1e6, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
    }


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kernels", type=pathlib.Path, required=True, help="folder from bench/gpu.sh --prepare")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="results JSON")
    parser.add_argument("--svg", type=pathlib.Path, help="tokens/s plot (default: tokens-per-second.svg beside --out)")
    parser.add_argument("--layers", nargs="+", choices=floors.LAYERS, default=list(floors.LAYERS))
    parser.add_argument("--dtypes", nargs="+", choices=DTYPES, default=list(DTYPES))
    parser.add_argument("--tokens", nargs="+", type=int, default=[2048, 8192, 32768], help="T, multiples of K = 16")
    parser.add_argument("--heads", nargs="+", type=int, default=[64, 512], help="B·H, multiples of 16")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per measurement (median)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--copies", type=int, default=3, help="input copies rotated between calls")
    args = parser.parse_args()
    if any(T % K for T in args.tokens) or any(BH % HEADS for BH in args.heads):
        parser.error(f"T must be a multiple of {K} and B·H a multiple of {HEADS}")
    args.dtypes = [d for d in DTYPES if d in args.dtypes]
    args.svg = args.svg or args.out.with_name("tokens-per-second.svg")
    return args


def main() -> int:
    args = parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    torch.set_float32_matmul_precision("highest")  # TF32 off: float32 stays float32 (dual form, f32 ceiling)
    torch.manual_seed(0)
    paths = {(l, d): kernels.module_path(args.kernels, l, d) for l in args.layers for d in args.dtypes}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        print(f"missing generated kernels (run bench/gpu.sh --prepare {args.kernels}): {missing}", file=sys.stderr)
        return 1
    began = time.time()
    kernels.build_all(list(paths.values()))
    modules = {key: kernels.load(p) for key, p in paths.items()}
    for (layer, _), m in modules.items():
        assert m.STATES == floors.state_shapes(layer, D) and m.K == K, f"{layer}: the generated kernel's sizes differ from D = {D}, K = {K}"

    results = {
        **describe_device(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "method": {"timer": "CUDA events, one call each, device idle before each", "statistic": "median", "runs": args.runs, "warmup": args.warmup, "input_copies": args.copies, "tf32": False},
        "sizes": {"D": D, "K": K, "heads": HEADS, "T": args.tokens, "BH": args.heads},
        "ceilings": timing.measure_ceilings(args.runs, args.warmup),
        "cases": [],
    }
    c = results["ceilings"]
    print(f"{results['device']}: copy {c['bandwidth_GBps']:.0f} GB/s, matmul f32 {c['matmul_TFLOPs']['f32']:.1f} TFLOP/s, tf32 {c['matmul_TFLOPs']['tf32']:.0f} TFLOP/s, bf16 {c['matmul_TFLOPs']['bf16']:.0f} TFLOP/s ({time.time() - began:.0f} s)", flush=True)
    chains = {}
    for BH in args.heads:
        for T in args.tokens:
            cases = run_group(BH, T, modules, chains, args)
            results["cases"] += [report.finish_case(case, results["ceilings"], D, K) for case in cases]
            report.write(results, args.out, args.svg)
            print(f"B·H = {BH}, T = {T} done ({time.time() - began:.0f} s)", flush=True)
    print(report.table(results))
    flagged = [f"{c['layer']} {c['dtype']} B·H={c['BH']} T={c['T']} {name}: {e:.1e}" for c in results["cases"] for name, e in c["errors"].items() if not e < ERROR_BOUNDS[c["dtype"]]]
    if flagged:
        print("relative errors against the f32 dual form above bounds:\n  " + "\n  ".join(flagged))
    return 1 if flagged else 0


if __name__ == "__main__":
    sys.exit(main())
