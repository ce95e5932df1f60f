"""The generated PyTorch binding of a spec with an update rule on CPU tensors, driven by
tests/torch-rules.test.ts.

usage: rules_binding.py MODULE_DIR STEM CASE.json

CASE.json holds a list of calls in the `run` convention, each with the f64 reference's outputs.
The first call gives every input; each later call gives its views, lr and rule tokens and takes
states, accums and optimizer states from the binding's own outputs of the call before, as a
caller continuing a sequence does. Prints one JSON object: per call, the relative error of every
output, and the message of every bad call (each must raise).
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


def by_name(d):
    return {n: tensor(t) for n, t in d.items()}


def main():
    module_dir, stem, case_path = sys.argv[1:]
    spec = importlib.util.spec_from_file_location(stem, f"{module_dir}/{stem}.py")
    layer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layer)
    with open(case_path) as f:
        case = json.load(f)

    errors = []
    carried = None
    first_call = None
    for given in case["calls"]:
        inputs = given["inputs"]
        call = dict(
            views=by_name(inputs["views"]),
            lr=tensor(inputs["lr"]) if "lr" in inputs else None,
            tokens=by_name(inputs["tokens"]),
            params=by_name(inputs["params"]),
            start=inputs["start"],
        )
        if carried is None:
            call.update(states=by_name(inputs["states"]), accums=by_name(inputs["accums"]))
            if layer.OPTS:
                call.update(opts=by_name(inputs["opts"]))
            first_call = call
        else:
            call.update(carried)
        result = layer.forward(**call)
        output, states, accums = result[:3]
        opts = result[3] if layer.OPTS else {}
        carried = dict(states=states, accums=accums, **({"opts": opts} if layer.OPTS else {}))
        want = given["expected"]
        e = {"output": relative_error(output, want["output"])}
        e.update({f"state.{n}": relative_error(t, want[f"state.{n}"]) for n, t in states.items()})
        e.update({f"accum.{n}": relative_error(t, want[f"accum.{n}"]) for n, t in accums.items()})
        e.update({f"opt.{n}": relative_error(t, want[f"opt.{n}"]) for n, t in opts.items()})
        errors.append(e)

    call = first_call
    first_token = next(iter(call["tokens"]))
    bad = {
        "missing token": dict(call, tokens={n: t for n, t in call["tokens"].items() if n != first_token}),
        "short token": dict(call, tokens={**call["tokens"], first_token: call["tokens"][first_token][..., :-1]}),
        "f64 token": dict(call, tokens={**call["tokens"], first_token: call["tokens"][first_token].double()}),
    }
    if layer.OPTS:
        first_opt = next(iter(call["opts"]))
        bad["unknown opt"] = dict(call, opts={**call["opts"], "nonesuch": call["opts"][first_opt]})
        bad["short opt"] = dict(call, opts={**call["opts"], first_opt: call["opts"][first_opt][..., :-1]})
    messages = {}
    for label, args in bad.items():
        try:
            layer.forward(**args)
            messages[label] = None
        except (TypeError, ValueError, RuntimeError) as e:
            messages[label] = f"{type(e).__name__}: {e}"
    print(json.dumps({"errors": errors, "messages": messages}))


main()
