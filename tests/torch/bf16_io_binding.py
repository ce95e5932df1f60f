"""The generated PyTorch binding with bf16 I/O on CPU tensors, driven by tests/torch-bf16-io.test.ts.

usage: bf16_io_binding.py F32_DIR BF16_DIR STEM CASE.json

F32_DIR and BF16_DIR hold the same spec compiled with io f32 and io bf16. CASE.json holds a call's
inputs in the `run` convention and the f64 reference's outputs on the bf16-rounded views. Prints
one JSON object: the bf16 module's output (its dtype and values), the relative error of its states
and accumulators, the messages of calls with float32 views or outputs, and, for each backward
(fused float32, unfused float64), whether training through the bf16 module gives what the f32
module gives on the same bf16 values with its output rounded to bf16: output and every gradient
bitwise (the view gradients rounded to bf16: the bf16 module's fused backward writes them so,
autograd casts the f32 module's), and the bf16 module's call takes its bf16 views with no cast in
between (the kernels read them as stored). Last, the whole layer
(STEM_layer.py) of both, with the same weights: the bf16 one's relative difference from the f32
one, in inference and in training, and whether every weight got a finite gradient.
"""

import importlib.util
import json
import sys

import torch


def tensor(t, dtype=torch.float32):
    return torch.tensor(t["data"], dtype=torch.float64).reshape(t["shape"]).to(dtype)


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


def message(call):
    try:
        call()
        return None
    except (TypeError, ValueError, RuntimeError) as e:
        return f"{type(e).__name__}: {e}"


def trained(layer, inputs, bf16_views, weights):
    """Output, gradients and the autograd nodes feeding the call of one differentiable call: views
    from bf16 values (as bf16 leaves, or float32 leaves of the same values), the loss a weighted sum
    of the output (rounded to bf16) and the states after the call."""
    views = {
        n: (tensor(t).to(torch.bfloat16) if bf16_views else tensor(t).to(torch.bfloat16).float()).requires_grad_(True)
        for n, t in inputs["views"].items()
    }
    params = {n: tensor(t).requires_grad_(True) for n, t in inputs["params"].items()}
    states = {n: tensor(t).requires_grad_(True) for n, t in inputs["states"].items()}
    output, states_out, _ = layer.forward(
        views=views,
        lr=tensor(inputs["lr"]) if "lr" in inputs else None,
        scale=tensor(inputs["scale"]) if "scale" in inputs else None,
        params=params,
        states=states,
        accums={n: tensor(t) for n, t in inputs["accums"].items()},
        start=inputs["start"],
    )
    # What the call's autograd node takes its inputs from: a cast of a view (ToCopyBackward0) would
    # be a widening copy; leaves (AccumulateGrad) are read as given.
    feeding = sorted({type(f).__name__ for f, _ in output.grad_fn.next_functions if f is not None})
    output = output.to(torch.bfloat16)
    loss = (output.float() * weights["output"]).sum()
    loss = loss + sum((states_out[n] * weights[n]).sum() for n in states_out)
    loss.backward()
    grads = {f"view.{n}": t.grad for n, t in views.items()}
    grads.update({f"param.{n}": t.grad for n, t in params.items()})
    grads.update({f"state.{n}": t.grad for n, t in states.items()})
    return output.detach(), grads, feeding


def same(a, b):
    return a is not None and b is not None and a.dtype == b.dtype and bool(torch.equal(a, b))


def main():
    f32_dir, bf16_dir, stem, case_path = sys.argv[1:]
    f32 = load(f"{f32_dir}/{stem}.py", f"{stem}_f32")
    bf16 = load(f"{bf16_dir}/{stem}.py", f"{stem}_bf16")
    with open(case_path) as f:
        case = json.load(f)
    inputs = case["inputs"]
    call = dict(
        views={n: tensor(t, torch.bfloat16) for n, t in inputs["views"].items()},
        lr=tensor(inputs["lr"]) if "lr" in inputs else None,
        scale=tensor(inputs["scale"]) if "scale" in inputs else None,
        params={n: tensor(t) for n, t in inputs["params"].items()},
        states={n: tensor(t) for n, t in inputs["states"].items()},
        accums={n: tensor(t) for n, t in inputs["accums"].items()},
        start=inputs["start"],
    )
    output, states, accums = bf16.forward(**call)
    want = case["expected"]
    errors = {f"state.{n}": relative_error(t, want[f"state.{n}"]) for n, t in states.items()}
    errors.update({f"accum.{n}": relative_error(t, want[f"accum.{n}"]) for n, t in accums.items()})

    first = next(iter(call["views"]))
    f32_views = dict(call, views={**call["views"], first: call["views"][first].float()})
    f32_out = (torch.empty(output.shape), states, accums)
    messages = {
        "f32 view": message(lambda: bf16.forward(**f32_views)),
        "f32 out": message(lambda: bf16.forward(**call, out=f32_out)),
    }

    torch.manual_seed(0)
    weights = {"output": torch.randn(output.shape)}
    weights.update({n: torch.randn(t.shape) for n, t in states.items()})
    training = {}
    for label, dtype in (("fused", torch.float32), ("unfused", torch.float64)):
        f32.BACKWARD_DTYPE = bf16.BACKWARD_DTYPE = dtype
        want_out, want_grads, _ = trained(f32, inputs, False, weights)
        got_out, got_grads, feeding = trained(bf16, inputs, True, weights)
        cast = {k: g.to(torch.bfloat16) if k.startswith("view.") else g for k, g in want_grads.items()}
        training[label] = {
            "output": same(got_out, want_out),
            **{k: same(got_grads[k], cast[k]) for k in cast},
            "no widening copy": feeding == ["AccumulateGrad"],
        }

    layers = {}
    for label, module_dir in (("f32", f32_dir), ("bf16", bf16_dir)):
        torch.manual_seed(1)
        layers[label] = load(f"{module_dir}/{stem}_layer.py", f"{stem}_layer_{label}").Layer(
            width=case["width"], base_lr=1.0, use_gate=True
        )
    x = torch.randn(2, 9, case["width"])
    with torch.no_grad():
        inference = relative_error(layers["bf16"](x), {"data": layers["f32"](x).flatten().tolist()})
    trained_out = layers["bf16"](x)
    trained_out.square().mean().backward()
    layer = {
        "inference": inference,
        "training": relative_error(trained_out, {"data": layers["f32"](x).flatten().tolist()}),
        "dtype": str(trained_out.dtype),
        "finite gradients": all(p.grad is not None and bool(p.grad.isfinite().all()) for p in layers["bf16"].parameters()),
    }

    print(
        json.dumps(
            {
                "output": {"dtype": str(output.dtype), "shape": list(output.shape), "data": output.float().flatten().tolist()},
                "errors": errors,
                "messages": messages,
                "training": training,
                "layer": layer,
            }
        )
    )


main()
