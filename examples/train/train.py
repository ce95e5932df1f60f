"""In-context linear regression with a TTT layer, trained in PyTorch on the CPU through tttc's binding.

    npx tttc compile examples/ttt_linear.ttt --target cuda -D D=16 -D K=8 --out build/train
    TTTC_CUDA_CPU_INCLUDE=runtime/cuda-cpu/include python3 examples/train/train.py build/train/ttt_linear_layer.py

Every sequence draws its own random linear map W* (d x d) and shows the model, token by token, a
pair (x_t, y_t = W* x_t) together with the next input x_{t+1}; the model must predict y_{t+1}.
No fixed weights can do better than predicting 0 (a loss of 1 per coordinate), since W* is new in
every sequence: what brings the loss below 1 is the layer's inner model learning W* from the pairs
it has read, at test time. That is where TTT should shine.

The model is an embedding, the generated layer (STEM_layer.py: its forward runs the fused kernel,
its backward the fused backward kernel) with a residual, and a linear read-out, trained with Adam on
the mean squared error. It prints the first and final losses and writes the loss curve as an SVG.
"""

import argparse
import importlib.util
import pathlib
import time

import torch
from torch import nn


def load(path):
    spec = importlib.util.spec_from_file_location(pathlib.Path(path).stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def batch(sequences, tokens, d, generator):
    """Inputs [B, T, 3d] = (x_t, y_t, x_{t+1}) and targets [B, T, d] = y_{t+1}, y = W* x per sequence."""
    w = torch.randn(sequences, d, d, generator=generator) / d**0.5
    x = torch.randn(sequences, tokens + 1, d, generator=generator)
    y = x @ w.transpose(1, 2)
    inputs = torch.cat((x[:, :-1], y[:, :-1], x[:, 1:]), dim=-1)
    return inputs, y[:, 1:]


class Model(nn.Module):
    def __init__(self, layer_module, d, width, base_lr):
        super().__init__()
        self.embed = nn.Linear(3 * d, width)
        self.ttt = layer_module.Layer(width, base_lr=base_lr)
        self.head = nn.Linear(width, d)

    def forward(self, inputs):
        h = self.embed(inputs)
        return self.head(h + self.ttt(h))


def svg_plot(losses, path, title):
    """The loss per step as an SVG line plot with labelled axes, written without a plotting library."""
    width, height, left, right, top, bottom = 640, 400, 64, 16, 40, 48
    top_value = max(*losses, 1.0)
    x_of = lambda i: left + (width - left - right) * i / max(1, len(losses) - 1)
    y_of = lambda v: top + (height - top - bottom) * (1 - v / top_value)
    points = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in enumerate(losses))
    ticks = []
    for k in range(6):
        v = top_value * k / 5
        ticks.append(f'<line x1="{left}" x2="{width - right}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}" stroke="#ddd"/>')
        ticks.append(f'<text x="{left - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for k in range(6):
        i = round((len(losses) - 1) * k / 5)
        ticks.append(f'<text x="{x_of(i):.1f}" y="{height - bottom + 18}" text-anchor="middle">{i}</text>')
    svg = f"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>
{chr(10).join(ticks)}
<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="black"/>
<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="black"/>
<line x1="{left}" x2="{width - right}" y1="{y_of(1.0):.1f}" y2="{y_of(1.0):.1f}" stroke="#d62728" stroke-dasharray="6 4"/>
<text x="{width - right - 4}" y="{y_of(1.0) - 6:.1f}" text-anchor="end" fill="#d62728">predicting 0: the best without learning in context</text>
<polyline points="{points}" fill="none" stroke="#1f77b4" stroke-width="1.5"/>
<text x="{width / 2}" y="{height - 10}" text-anchor="middle">step</text>
<text x="16" y="{height / 2}" text-anchor="middle" transform="rotate(-90 16 {height / 2})">mean squared error</text>
</svg>
"""
    pathlib.Path(path).write_text(svg)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("layer", help="the generated STEM_layer.py (tttc compile --target cuda)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sequences", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--d", type=int, default=4, help="size of the regression problem")
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--base-lr", type=float, default=1.0)
    parser.add_argument("--plot", default="train-loss.svg")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    layer_module = load(args.layer)
    model = Model(layer_module, args.d, args.heads * layer_module.D, args.base_lr)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(args.seed)
    losses = []
    began = time.time()
    for step in range(args.steps):
        inputs, targets = batch(args.sequences, args.tokens, args.d, generator)
        loss = ((model(inputs) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % 25 == 0 or step == args.steps - 1:
            print(f"step {step:4d}  loss {loss.item():.4f}  ({time.time() - began:.0f} s)", flush=True)

    window = max(1, args.steps // 20)
    first, final = sum(losses[:window]) / window, sum(losses[-window:]) / window
    print(f"first loss {losses[0]:.4f}, final loss {losses[-1]:.4f} (means of the first and last {window} steps: {first:.4f}, {final:.4f})")
    svg_plot(losses, args.plot, f"In-context linear regression (d = {args.d}) with {pathlib.Path(args.layer).name}")
    print(f"loss curve: {args.plot}")


if __name__ == "__main__":
    main()
