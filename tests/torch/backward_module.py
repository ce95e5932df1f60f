"""Generated backward modules alone (no kernel), in float64, driven by tests/torch-grad.test.ts.

usage: backward_module.py CASES.json

Each case names a generated STEM_unfused_backward.py and holds a call's inputs and its outputs'
cotangents by their mini-batch program names, its start, and the f64 reference backward's
gradients. Prints one JSON object: per case, the relative error of every gradient (None for NaN
or a gradient the module did not give).
"""

import importlib.util
import json
import sys

import torch


def tensor(t):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"])


def relative_error(got, want):
    if got is None:
        return None
    want = tensor(want).flatten()
    scale = torch.linalg.norm(want)
    error = float(torch.linalg.norm(got.flatten() - want) / (scale if scale > 0 else 1))
    return None if error != error else error


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = {}
    for label, case in cases.items():
        spec = importlib.util.spec_from_file_location("backward", case["module"])
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        inputs = {k: tensor(t) for k, t in case["inputs"].items()}
        cotangents = {k: tensor(t) for k, t in case["cotangents"].items()}
        grads = module.backward(inputs, cotangents, case["start"])
        results[label] = {k: relative_error(grads.get(k), t) for k, t in case["expected"].items()}
    print(json.dumps(results))


main()
