"""tttc's generated CUDA kernels, as `bench/gpu.sh --prepare DIR` lays them out:
DIR/<layer>-<config>/ttt_<layer>.py beside its .cu and _torch.cpp (tttc compile --target cuda;
config: a key of floors.CONFIGS)."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import multiprocessing
import os
import pathlib
import re

import torch


def module_path(root: pathlib.Path, layer: str, config: str) -> pathlib.Path:
    return root / f"{layer}-{config}" / f"ttt_{layer}.py"


def load(path: pathlib.Path):
    """A generated binding module (`<stem>.py` next to its `.cu`), under a name unique to its folder."""
    name = re.sub(r"\W", "_", f"tttc_{path.parent.name}_{path.stem}")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(path: str) -> str:
    load(pathlib.Path(path))._extension()
    return path


def build_all(paths: list[pathlib.Path]) -> None:
    """Builds the extensions side by side into torch's cache (torch builds one at a time per
    process), so that loading them afterwards costs nothing."""
    workers = max(1, min(len(paths), (os.cpu_count() or 2) // 2))
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for path in pool.map(_build, [str(p) for p in paths]):
            print(f"built {path}", flush=True)


def view_dtypes(module) -> dict:
    """Each view's dtype as the kernel stores it (bf16 under --io bf16): INPUT_DTYPES lists the
    views first, in VIEWS order."""
    return dict(zip(module.VIEWS, module.INPUT_DTYPES))


def outputs(module, B: int, H: int, T: int, device: str) -> tuple:
    """An (output, states, accums) triple for `out=`, NaN-filled so an unwritten element shows."""

    def nan(*shape, dtype=torch.float32):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    # The output as the kernel stores it: bf16 under --io bf16.
    return (nan(B, H, T, *module.OUTPUT, dtype=module.OUTPUT_DTYPES[0]), {n: nan(B, H, *s) for n, s in module.STATES.items()}, {n: nan(B, H, *s) for n, s in module.STATES.items()})
