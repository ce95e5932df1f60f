#!/usr/bin/env python3
"""Checks bench/gpu/dual_form.py on the CPU, in float64, against the reference vectors' `kernel.*`
tensors (outputs and final states computed by the paper's published code), and checks the
multiply-add counts of bench/gpu/floors.py against the matmuls dual_form.py actually does.

    python3 bench/gpu/check_dual_form.py [REFERENCE_DIR]

REFERENCE_DIR defaults to tests/fixtures/ttt-reference in the repository. Needs PyTorch
(any recent CPU build, e.g. Debian's python3-torch); not part of the vitest suite. Exits 1 when
an error exceeds its bound.
"""

from __future__ import annotations

import json
import pathlib
import struct
import sys

import torch
from torch.overrides import TorchFunctionMode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import dual_form  # noqa: E402
import floors  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_REFERENCE = REPO / "tests" / "fixtures" / "ttt-reference"
# An f64 executor should land below 1e-10 (the reference's README). TTT-MLP's reference used the
# truncated gelu constant 0.79788456 in its gelu derivative, dual_form.py the exact √(2/π): that
# alone moves the result by a few 1e-12, still well inside the bound.
TOLERANCE = 1e-10
SAFETENSORS_DTYPES = {"F32": torch.float32, "F64": torch.float64}


def read_safetensors(path: pathlib.Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """A safetensors file: an 8-byte little-endian header length, a JSON header giving each
    tensor's dtype, shape and byte range, then the raw little-endian data."""
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + header_len])
    metadata = header.pop("__metadata__", {})
    data = bytearray(raw[8 + header_len :])
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        flat = torch.frombuffer(data[begin:end], dtype=SAFETENSORS_DTYPES[entry["dtype"]])
        tensors[name] = flat.reshape(entry["shape"]).to(torch.float64)
    return tensors, metadata


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).norm() / want.norm()).item()


def initial_state(w: torch.Tensor, name: str, B: int) -> torch.Tensor:
    """A state stored once per head ([H, D, D'], biases [H, 1, D']) as the kernels take it:
    [B, H, ...] with biases as vectors."""
    if name.startswith("b"):
        w = w.squeeze(-2)
    return w.expand(B, *w.shape)


def check_file(path: pathlib.Path) -> list[str]:
    t, meta = read_safetensors(path)
    layer = meta["kind"]
    B = t["kernel.XQ"].shape[0]
    names = list(floors.state_shapes(layer, t["kernel.XQ"].shape[-1]))
    states = {n: initial_state(t[f"weights.{n}"], n, B) for n in names}
    out, final = dual_form.forward(
        layer,
        q=t["kernel.XQ"],
        k=t["kernel.XK"],
        v=t["kernel.XV"],
        lr=t["kernel.ttt_lr_eta"],
        scale=t["kernel.token_eta"],
        gamma=t["weights.ttt_norm_weight"],
        beta=t["weights.ttt_norm_bias"],
        states=states,
    )
    errors = {"output": relative_error(out, t["kernel.output"])}
    for n in names:
        want = t[f"kernel.final.{n}"]
        errors[f"final.{n}"] = relative_error(final[n].reshape(want.shape), want)
    failures = []
    for name, error in errors.items():
        ok = error < TOLERANCE
        print(f"{'ok' if ok else 'FAIL':4} {path.name} {name}: relative error {error:.2e}")
        if not ok:
            failures.append(f"{path.name} {name}: {error:.2e} >= {TOLERANCE:.0e}")
    return failures


class MatmulCounter(TorchFunctionMode):
    """Sums the multiply-adds of every matmul run under it (the `@` of tensors of rank ≥ 2)."""

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__):
            a, b = args[0], args[1]
            batch = torch.broadcast_shapes(a.shape[:-2], b.shape[:-2]).numel()
            self.macs += batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
        return func(*args, **(kwargs or {}))


def check_counts() -> list[str]:
    """The matmuls of one mini-batch of one head, counted while dual_form.py runs, against floors.py."""
    failures = []
    for layer in floors.LAYERS:
        D, K = 64, 16
        shapes = floors.state_shapes(layer, D)
        states = {n: torch.randn(1, 1, *s, dtype=torch.float64) for n, s in shapes.items()}
        views = [torch.randn(1, 1, K, D, dtype=torch.float64) for _ in range(3)]
        with MatmulCounter() as counter:
            dual_form.forward(layer, *views, torch.rand(1, 1, K, dtype=torch.float64), torch.rand(K, dtype=torch.float64), torch.ones(1, D, dtype=torch.float64), torch.zeros(1, D, dtype=torch.float64), states)
        want = floors.macs_per_token(layer, D, K) * K
        ok = counter.macs == want
        print(f"{'ok' if ok else 'FAIL':4} {layer}: {counter.macs} multiply-adds per mini-batch counted in dual_form.py, floors.py says {want}")
        if not ok:
            failures.append(f"{layer}: dual_form.py does {counter.macs} multiply-adds per mini-batch, floors.py counts {want}")
    return failures


def main() -> int:
    reference = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REFERENCE
    files = sorted(reference.glob("*.safetensors"))
    if not files:
        print(f"no .safetensors files in {reference}", file=sys.stderr)
        return 1
    failures = [f for path in files for f in check_file(path)] + check_counts()
    print("\n".join(failures) if failures else f"dual_form.py matches {len(files)} reference files in float64 (bound {TOLERANCE:.0e})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
