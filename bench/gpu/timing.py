"""GPU timing as METHOD.md asks: CUDA events around each call, warm-up first, the median of many
calls, and inputs rotated among several copies so that a later call cannot read what an earlier
one left in L2. Also the ceilings the floors divide by, measured on the card in hand: copy
bandwidth and matmul rates."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch


def time_ms(call: Callable[[int], object], copies: int, runs: int, warmup: int) -> dict:
    """Times call(i), i the input copy to use, and returns the median and spread in milliseconds.

    Each call starts on an idle device (synchronize first), so a launch-bound call is charged its
    launch gaps instead of overlapping the previous call's tail."""
    for i in range(warmup):
        call(i % copies)
    events = []
    for i in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        call((warmup + i) % copies)
        end.record()
        events.append((start, end))
    torch.cuda.synchronize()
    times = [s.elapsed_time(e) for s, e in events]
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": runs}


def measure_bandwidth_GBps(runs: int, warmup: int) -> float:
    """A 2 GiB device-to-device copy, counting the bytes read and the bytes written."""
    n = 2**29  # float32 elements
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    ms = time_ms(lambda _: dst.copy_(src), 1, runs, warmup)["median_ms"]
    return 2 * n * 4 / (ms * 1e-3) / 1e9


def measure_matmul_TFLOPs(dtype: torch.dtype, runs: int, warmup: int, tf32: bool = False) -> float:
    """An 8192³ product on random data (zeros run faster, METHOD.md); float32 with TF32 off, or
    on when tf32 (PyTorch's setting restored afterwards)."""
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    c = torch.empty(n, n, device="cuda", dtype=dtype)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        ms = time_ms(lambda _: torch.matmul(a, b, out=c), 1, runs, warmup)["median_ms"]
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * n**3 / (ms * 1e-3) / 1e12


def measure_ceilings(runs: int, warmup: int) -> dict:
    ceilings = {
        "bandwidth_GBps": measure_bandwidth_GBps(runs, warmup),
        "matmul_TFLOPs": {
            "f32": measure_matmul_TFLOPs(torch.float32, runs, warmup),
            "tf32": measure_matmul_TFLOPs(torch.float32, runs, warmup, tf32=True),
            "bf16": measure_matmul_TFLOPs(torch.bfloat16, runs, warmup),
        },
    }
    torch.cuda.empty_cache()
    return ceilings
