"""torch.autograd through the generated PyTorch binding on CPU tensors, driven by tests/torch-grad.test.ts.

usage: grad_binding.py MODULE_DIR STEM CASE.json

CASE.json holds a call's inputs (in the binding's argument structure), the cotangents of its
outputs, the f64 reference's outputs and gradients (each with the path of its input in the call),
and walks to check the module's chunk plan against. The kernel's outputs are poisoned with NaN
before it runs. Prints one JSON object: the relative error of every output and gradient (by the
fused backward, the default, and by the unfused backward in float64), the gradients autograd did not give, the walks that differ, and the messages of a double backward and
of out= on tensors that require grad.
"""

import importlib.util
import json
import math
import sys

import torch


def tensor(t):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"]).to(torch.float32)


def relative_error(got, want):
    """‖got − want‖ / ‖want‖, or ‖got − want‖ when want is zero (as core/tensor.ts); None for NaN."""
    got = got.detach().to(torch.float64).flatten()
    want = torch.tensor(want["data"], dtype=torch.float64)
    scale = torch.linalg.norm(want)
    error = float(torch.linalg.norm(got - want) / (scale if scale > 0 else 1))
    return None if error != error else error


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def leaf(t):
    return tensor(t).requires_grad_(True)


def call_of(inputs):
    """The binding's keyword arguments, every tensor a leaf that requires grad."""
    call = {"start": inputs["start"]}
    for key, value in inputs.items():
        if key == "start":
            continue
        call[key] = {n: leaf(t) for n, t in value.items()} if "shape" not in value else leaf(value)
    return call


def at(call, path):
    value = call[path[0]]
    return value[path[1]] if len(path) > 1 else value


def pairing(results, cotangents):
    """⟨cotangents, outputs⟩ summed: the scalar whose gradient the reference backward gives."""
    output, *groups = results
    total = (output * tensor(cotangents["output"])).sum()
    for group, name in zip(groups, ["states", "accums", "opts"]):
        for n, t in cotangents[name].items():
            total = total + (group[n] * tensor(t)).sum()
    return total


def poison(layer):
    """Fill every tensor the kernels write (outputs, checkpoints, gradients) with NaN before they run."""
    fresh = layer._empty

    def poisoned(*shape, device, **dtype):
        return fresh(*shape, device=device, **dtype).fill_(math.nan)

    layer._empty = poisoned


def main():
    module_dir, stem, case_path = sys.argv[1:]
    layer = load(f"{module_dir}/{stem}.py", stem)
    backward = load(f"{module_dir}/{stem}_unfused_backward.py", f"{stem}_unfused_backward")
    with open(case_path) as f:
        case = json.load(f)
    poison(layer)

    call = call_of(case["inputs"])
    results = layer.forward(**call)
    output, states, accums, *opts = results
    got = {"output": output}
    got.update({f"state.{n}": t for n, t in states.items()})
    got.update({f"accum.{n}": t for n, t in accums.items()})
    got.update({f"opt.{n}": t for n, t in (opts[0] if opts else {}).items()})
    outputs = {n: relative_error(got[n], t) for n, t in case["expected"]["outputs"].items()}

    pairing(results, case["cotangents"]).backward()
    grads, missing = {}, []
    for g in case["expected"]["grads"]:
        value = at(call, g["path"]).grad
        if value is None:
            missing.append(g["name"])
        else:
            grads[g["name"]] = relative_error(value, g["tensor"])

    layer.BACKWARD_DTYPE = torch.float64
    call64 = call_of(case["inputs"])
    pairing(layer.forward(**call64), case["cotangents"]).backward()
    grads64 = {g["name"]: relative_error(at(call64, g["path"]).grad, g["tensor"]) for g in case["expected"]["grads"]}
    layer.BACKWARD_DTYPE = torch.float32

    walks = [w for w in case["walks"] if [list(c) for c in backward.chunks(*w["args"])] != w["chunks"]]

    again = call_of(case["inputs"])
    leaves = [t for v in again.values() if isinstance(v, dict) for t in v.values()]
    leaves += [v for v in again.values() if isinstance(v, torch.Tensor)]
    try:
        torch.autograd.grad(pairing(layer.forward(**again), case["cotangents"]), leaves, create_graph=True)
        double = None
    except RuntimeError as e:
        double = str(e)
    try:
        layer.forward(**call_of(case["inputs"]), out=())
        out = None
    except ValueError as e:
        out = str(e)
    print(
        json.dumps(
            {"outputs": outputs, "grads": grads, "grads64": grads64, "missing": missing, "walks": walks, "double": double, "out": out}
        )
    )


main()
