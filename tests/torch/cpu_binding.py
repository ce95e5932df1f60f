"""The generated PyTorch binding on CPU tensors, driven by tests/torch-cpu.test.ts.

usage: cpu_binding.py MODULE_DIR STEM CASE.json

CASE.json holds the inputs in the `run` convention and the f64 reference's outputs. Prints one JSON
object: the relative error of every output, and the message of every bad call (each must raise).
"""

import importlib.util
import json
import sys

import torch


def tensor(t):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"]).to(torch.float32)


def relative_error(got, want):
    """‖got − want‖ / ‖want‖, or ‖got − want‖ when want is zero (as core/tensor.ts); None for NaN."""
    got = got.to(torch.float64).flatten()
    want = torch.tensor(want["data"], dtype=torch.float64)
    scale = torch.linalg.norm(want)
    error = float(torch.linalg.norm(got - want) / (scale if scale > 0 else 1))
    return None if error != error else error


def main():
    module_dir, stem, case_path = sys.argv[1:]
    spec = importlib.util.spec_from_file_location(stem, f"{module_dir}/{stem}.py")
    layer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layer)
    with open(case_path) as f:
        case = json.load(f)
    inputs = case["inputs"]
    call = dict(
        views={n: tensor(t) for n, t in inputs["views"].items()},
        lr=tensor(inputs["lr"]) if "lr" in inputs else None,
        scale=tensor(inputs["scale"]) if "scale" in inputs else None,
        params={n: tensor(t) for n, t in inputs["params"].items()},
        states={n: tensor(t) for n, t in inputs["states"].items()},
        accums={n: tensor(t) for n, t in inputs["accums"].items()},
        start=inputs["start"],
    )
    output, states, accums = layer.forward(**call)
    want = case["expected"]
    errors = {"output": relative_error(output, want["output"])}
    errors.update({f"state.{n}": relative_error(t, want[f"state.{n}"]) for n, t in states.items()})
    errors.update({f"accum.{n}": relative_error(t, want[f"accum.{n}"]) for n, t in accums.items()})

    first_view = next(iter(call["views"]))
    first_state = next(iter(call["states"]))
    bad = {
        "f64 view": dict(call, views={**call["views"], first_view: call["views"][first_view].double()}),
        "short view": dict(call, views={**call["views"], first_view: call["views"][first_view][..., :-1]}),
        "missing state": dict(call, states={n: t for n, t in call["states"].items() if n != first_state}),
        "start out of range": dict(call, start=layer.K),
        "state not contiguous": dict(
            call,
            states={**call["states"], first_state: call["states"][first_state].mT.contiguous().mT},
        ),
        "not a tensor": dict(call, views={**call["views"], first_view: [1.0, 2.0]}),
    }
    messages = {}
    for label, args in bad.items():
        try:
            layer.forward(**args)
            messages[label] = None
        except (TypeError, ValueError, RuntimeError) as e:
            messages[label] = f"{type(e).__name__}: {e}"
    print(json.dumps({"errors": errors, "messages": messages}))


main()
