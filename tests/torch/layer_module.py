"""The generated nn.Module of the whole layer on CPU tensors, driven by tests/torch-grad.test.ts.

usage: layer_module.py MODULE_DIR STEM CASE.json

CASE.json holds the layer's options, its weights under the published names, an input x and the
f64 TypeScript reference layer's output. Loads the weights with load_state_dict (strict: the
module's names must be exactly these), runs the layer and back-propagates a random pairing.
Prints one JSON object: the output's relative error, the parameters without a finite, nonzero
gradient, and a directional derivative by autograd and by a central difference.
"""

import importlib.util
import json
import sys

import torch


def tensor(t):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"]).to(torch.float32)


def main():
    module_dir, stem, case_path = sys.argv[1:]
    spec = importlib.util.spec_from_file_location(f"{stem}_layer", f"{module_dir}/{stem}_layer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with open(case_path) as f:
        case = json.load(f)
    layer = module.Layer(case["width"], **case["options"])
    layer.load_state_dict({n: tensor(t) for n, t in case["weights"].items()}, strict=True)
    x = tensor(case["x"]).requires_grad_(True)
    y = layer(x)
    want = torch.tensor(case["expected"]["data"], dtype=torch.float64)
    error = float(torch.linalg.norm(y.detach().double().flatten() - want) / torch.linalg.norm(want))

    torch.manual_seed(0)
    weight = torch.randn(y.shape)
    (y * weight).sum().backward()
    parameters = dict(layer.named_parameters())
    bad = [n for n, p in parameters.items() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.norm() == 0]
    if x.grad is None or x.grad.norm() == 0:
        bad.append("x")

    # The derivative along a random direction of every weight, against a central difference.
    direction = {n: torch.randn_like(p) for n, p in parameters.items()}
    along = sum(float((p.grad * direction[n]).sum()) for n, p in parameters.items())
    h = 1e-3

    def loss_at(step):
        with torch.no_grad():
            for n, p in parameters.items():
                p.add_(step * direction[n])
            value = float((layer(x.detach()) * weight).double().sum())
            for n, p in parameters.items():
                p.sub_(step * direction[n])
        return value

    difference = (loss_at(h) - loss_at(-h)) / (2 * h)
    print(json.dumps({"error": error, "bad": bad, "autograd": along, "difference": difference}))


main()
