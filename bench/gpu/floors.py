"""The least time a TTT inner-loop kernel can take for one benchmark case: three lower bounds.

- memory: the bytes that must cross device memory once (views and the output as the kernel stores
  them, 4 or 2 bytes an element; learning rates float32; the state read at the start and written
  at the end, float32) over the measured copy bandwidth;
- compute: the multiply-adds of the dual form's matmuls (counted below from bench/gpu/dual_form.py;
  check_dual_form.py checks the count against the matmuls it runs) over the measured matmul rate
  of the case's operand type (f32 with TF32 off, tf32, or bf16), divided by the matmuls at that
  rate each product takes (three under tf32x3);
- chain: mini-batches of one (sequence, head) run one after another, so no kernel beats the time
  one block alone takes for the same T; bench.py measures it at B·H = 1.

Elementwise work (LayerNorm, gelu, the E matrices) is left out of the compute bound: it is
O(D) per token against O(D²) for the matmuls. Pure Python, so it runs without a GPU.
"""

from __future__ import annotations

from typing import NamedTuple

LAYERS = ("linear", "mlp")
FLOAT_BYTES = 4  # learning rates and states: float32 in every configuration


class Config(NamedTuple):
    """One kernel configuration the benchmark times."""

    baselines: str  # the type the dual form and SDPA beside it run in: "f32" (TF32 off) or "bf16"
    rate: str  # the measured matmul rate its compute bound divides by: "f32" (TF32 off), "tf32" or "bf16"
    passes: int  # matmuls at that rate per product of the kernel
    io_bytes: int  # bytes per element of the views (q, k, v) and the output in device memory


# f32 operands, on the CUDA cores and then on tf32 tensor cores (tttc compile --dtype tf32x3:
# each operand split into a high and a low tf32 part, three mma per step, hi·hi + hi·lo + lo·hi,
# so f32's accuracy and f32's baselines); bf16 operands; all with float32 views and output. Then
# bf16 operands with the views and the output stored as bf16 (--dtype bf16 --io bf16).
CONFIGS = {
    "f32": Config("f32", "f32", 1, 4),
    # The f32 kernels in blocks of 128 threads (--threads 128), which the scheduler's model
    # (compiler/schedule/workgroup-size.ts) rates a few percent faster than its choice of 256 at
    # these sizes, within the margin it asks before it gives up the larger block: times that margin.
    "f32-128": Config("f32", "f32", 1, 4),
    "tf32x3": Config("f32", "tf32", 3, 4),
    "bf16": Config("bf16", "bf16", 1, 4),
    "bf16-io": Config("bf16", "bf16", 1, 2),
}


def state_shapes(layer: str, D: int) -> dict[str, tuple[int, ...]]:
    """The inner model's weights per (sequence, head), named as tttc's kernels name them."""
    if layer == "linear":
        return {"W1": (D, D), "b1": (D,)}
    hidden = 4 * D
    return {"W1": (D, hidden), "b1": (hidden,), "W2": (hidden, D), "b2": (D,)}


def dual_matmul_macs(width_in: int, width_out: int, K: int) -> int:
    """Per token, one matmul state [width_in, width_out] in the dual form (dual_form.dual_matmul):
    Q W and the update Xᵀ(E ⊙ Δ) cost width_in·width_out each; Q Xᵀ costs K·width_in; the
    (E ⊙ Attn) Δ and tril(E) Δ products cost K·width_out each."""
    return 2 * width_in * width_out + K * (width_in + 2 * width_out)


def macs_per_token(layer: str, D: int, K: int) -> int:
    """Multiply-adds per token per head of dual_form.linear_step / mlp_step."""
    if layer == "linear":
        return D * D + dual_matmul_macs(D, D, K)  # keys' forward x W, then the dual form
    hidden = 4 * D
    # Keys' forward through both layers, δ2 back through W2ᵀ, then the dual form at each layer.
    return 3 * D * hidden + dual_matmul_macs(D, hidden, K) + dual_matmul_macs(hidden, D, K)


def bytes_moved(layer: str, D: int, BH: int, T: int, io_bytes: int) -> int:
    """q, k, v read and the output written at io_bytes an element (4: float32, 2: bf16); lr read,
    the state read once and written once, at 4."""
    state = sum(_size(s) for s in state_shapes(layer, D).values())
    per_head = T * (3 * D + D) * io_bytes + (T + 2 * state) * FLOAT_BYTES
    return BH * per_head


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def floor(layer: str, dtype: str, D: int, K: int, BH: int, T: int, ceilings: dict, chain_ms: float | None) -> dict:
    """The three bounds in milliseconds, the largest of them, and which one it is, for the
    configuration named dtype (a key of CONFIGS).

    ceilings: {"bandwidth_GBps": ..., "matmul_TFLOPs": {"f32": ..., "tf32": ..., "bf16": ...}}.
    chain_ms is None when it was not measured; the floor is then the larger of the other two."""
    config = CONFIGS[dtype]
    nbytes = bytes_moved(layer, D, BH, T, config.io_bytes)
    flops = 2 * macs_per_token(layer, D, K) * BH * T
    bounds = {
        "memory": nbytes / (ceilings["bandwidth_GBps"] * 1e9) * 1e3,
        "compute": flops * config.passes / (ceilings["matmul_TFLOPs"][config.rate] * 1e12) * 1e3,
    }
    if chain_ms is not None:
        bounds["chain"] = chain_ms
    bound = max(bounds, key=bounds.get)
    hardware = max(bounds["memory"], bounds["compute"])
    return {
        "bytes": nbytes,
        "flops": flops,
        **{f"{name}_ms": ms for name, ms in bounds.items()},
        "hardware_ms": hardware,
        "floor_ms": bounds[bound],
        "bound": bound,
    }
