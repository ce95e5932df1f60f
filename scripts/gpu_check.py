#!/usr/bin/env python3
"""Runs tttc's generated CUDA kernels on a GPU against the f64 reference.

    python3 scripts/gpu_check.py CASES_DIR [--case NAME] [--no-sanitizer]

CASES_DIR comes from `npx tsx scripts/gpu-cases.ts --out CASES_DIR` (scripts/gpu-check.sh does
both). Each case runs its kernel through the generated PyTorch binding and compares every output
with the reference (relative error ||got - want|| / ||want|| below the case's tolerance); f32
cases also check that decoding token by token reproduces the prefill. Then the manifest's
sanitizer case runs again under compute-sanitizer's memcheck, racecheck and synccheck.
Needs PyTorch with CUDA, nvcc and a GPU; exits 1 when anything fails.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys

import torch

# The generated bindings are loaded and built as the GPU benchmark does.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench" / "gpu"))
import kernels  # noqa: E402

DTYPES = {"float32": torch.float32, "float64": torch.float64}
SANITIZER_TOOLS = ["memcheck", "racecheck", "synccheck"]


def read_tensor(root: pathlib.Path, entry: dict) -> torch.Tensor:
    data = bytearray((root / entry["file"]).read_bytes())
    return torch.frombuffer(data, dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"]).cuda()


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    diff = (got.double() - want.double()).norm()
    scale = want.double().norm()
    return (diff / scale if scale > 0 else diff).item()


def poisoned_outputs(module, named: dict) -> tuple:
    """NaN-filled output tensors, so an element the kernel never writes fails the comparison."""
    first = named[next(iter(module.VIEWS))]
    B, H, T = first.shape[:3]
    return kernels.outputs(module, B, H, T, first.device)


def call(module, named: dict, start: int) -> dict:
    """Runs the kernel on named tensors in the `run` convention, outputs poisoned first; returns its named outputs."""
    has_accums = any(f"accum.{n}" in named for n in module.STATES)
    output, states, accums = module.forward(
        # As the kernel stores each view (bf16 under --io bf16): the case's values are bf16 already.
        views={n: named[n].to(d) for n, d in zip(module.VIEWS, module.INPUT_DTYPES)},
        lr=named.get("lr"),
        scale=named.get("scale"),
        params={n: named[f"param.{n}"] for n in module.PARAMS},
        states={n: named[f"state.{n}"] for n in module.STATES},
        accums={n: named[f"accum.{n}"] for n in module.STATES} if has_accums else None,
        start=start,
        out=poisoned_outputs(module, named),
    )
    return {"output": output, **{f"state.{n}": t for n, t in states.items()}, **{f"accum.{n}": t for n, t in accums.items()}}


def decode(module, named: dict, start: int) -> dict:
    """The same tokens one call per token, each call's state carried into the next."""
    per_token = [*module.VIEWS, *(["lr"] if module.HAS_LR else [])]
    T = named[per_token[0]].shape[2]
    carried = dict(named)
    outputs = []
    for t in range(T):
        step = {**carried, **{n: named[n][:, :, t : t + 1].contiguous() for n in per_token}}
        result = call(module, step, (start + t) % module.K)
        outputs.append(result.pop("output"))
        carried.update(result)
    return {"output": torch.cat(outputs, dim=2), **{n: carried[n] for n in result}}


def check_case(root: pathlib.Path, case: dict) -> list[str]:
    module = kernels.load(root / case["module"])
    named = {n: read_tensor(root, e) for n, e in case["inputs"].items()}
    got = call(module, named, case["start"])
    failures = []
    for name, entry in case["expected"].items():
        error = relative_error(got[name], read_tensor(root, entry))
        tolerance = case.get("outputTolerance", case["tolerance"]) if name == "output" else case["tolerance"]
        if not error < tolerance:
            failures.append(f"{name}: relative error {error:.2e} against the reference, tolerance {tolerance:.1e}")
    if case["decode"]:
        for name, t in decode(module, named, case["start"]).items():
            error = relative_error(t, got[name])
            if not error < case["tolerance"]:
                failures.append(f"{name}: token-by-token decode differs from prefill by {error:.2e}")
    torch.cuda.synchronize()
    return failures


def sanitize(cases_dir: pathlib.Path, case: str) -> list[str]:
    tool = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not os.path.exists(tool):
        return ["compute-sanitizer not found on PATH or in /usr/local/cuda/bin"]
    failures = []
    for kind in SANITIZER_TOOLS:
        command = [tool, "--tool", kind, "--error-exitcode", "1", sys.executable, __file__, str(cases_dir), "--case", case, "--no-sanitizer"]
        result = subprocess.run(command, capture_output=True, text=True)
        status = "ok" if result.returncode == 0 else "FAIL"
        print(f"{status:4} compute-sanitizer --tool {kind}: {case}")
        if result.returncode != 0:
            failures.append(f"compute-sanitizer --tool {kind} on {case}:\n{result.stdout[-4000:]}{result.stderr[-4000:]}")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases_dir", type=pathlib.Path)
    parser.add_argument("--case", help="run only the case with this name")
    parser.add_argument("--no-sanitizer", action="store_true", help="skip the compute-sanitizer runs")
    args = parser.parse_args()
    root = args.cases_dir.resolve()
    manifest = json.loads((root / "manifest.json").read_text())
    cases = [c for c in manifest["cases"] if args.case is None or c["name"] == args.case]
    if not cases:
        print(f"no case named {args.case!r} in {root / 'manifest.json'}", file=sys.stderr)
        return 1
    if not torch.cuda.is_available():
        print("no CUDA device visible to PyTorch", file=sys.stderr)
        return 1

    kernels.build_all(sorted({root / c["module"] for c in cases}))

    failures = {}
    for case in cases:
        problems = check_case(root, case)
        print(f"{'ok' if not problems else 'FAIL':4} {case['name']}")
        for p in problems:
            print(f"     {p}")
        if problems:
            failures[case["name"]] = problems
    if not args.no_sanitizer:
        problems = sanitize(root, manifest["sanitize"])
        if problems:
            failures["compute-sanitizer"] = problems
            print("\n".join(problems))
    passed = sum(1 for c in cases if c["name"] not in failures)
    print(f"{passed}/{len(cases)} cases passed on {torch.cuda.get_device_name()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
