"""The paper's mini-batch dual form of TTT-Linear and TTT-MLP in plain PyTorch: the baseline a user
has today, and the implementation the GPU benchmark compares tttc's kernels with.

Written from the formulas of semantics.md §1 (shared/design/semantics.md). Per mini-batch of K
tokens, with rows X (keys), Q (queries), V (values), every gradient taken at the mini-batch's
start state, δ = ∂loss/∂z at a matmul's output z, and E[i, j] = scale_i · lr_j:

    Z̄ = Q W − (tril(E) ⊙ Q Xᵀ) Δ + b − tril(E) Δ        outputs of the queries
    W ← W − Xᵀ (E[K−1, :] ⊙ Δ),   b ← b − Σ_j E[K−1, j] Δ_j    state for the next mini-batch

The layer is f(x) = x + LN(f_res(x)) · γ + β with loss ½‖f(k) − v‖², so δ at f_res's output is
the LayerNorm's backward of (LN(z) · γ + β − (v − k)) · γ, written out by hand as the paper's
code does. TTT-MLP applies the dual form to both matmuls; the second one's queries are
gelu_tanh(Z̄1), the hidden activations under the already-updated first layer.

Shapes: q, k, v [B, H, T, D]; lr [B, H, T]; scale [K]; gamma, beta [H, D]; states [B, H, ...]
as tttc's kernels name them (W1 [D, D] and b1 [D] for TTT-Linear; W1 [D, 4D], b1 [4D], W2
[4D, D], b2 [D] for TTT-MLP). T must be a multiple of K (no trailing partial mini-batch). Works
in any floating dtype and under torch.autocast; states are never modified in place.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN_EPS = 1e-6
GELU_C = math.sqrt(2.0 / math.pi)  # exact; the published reference truncates it to 0.79788456
GELU_A = 0.044715


def normalize(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LayerNorm without the affine part over the last axis (biased variance): (x̂, 1/σ)."""
    centred = z - z.mean(dim=-1, keepdim=True)
    inv_std = torch.rsqrt(centred.square().mean(dim=-1, keepdim=True) + LN_EPS)
    return centred * inv_std, inv_std


def ln_l2_delta(z: torch.Tensor, target: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """∂/∂z of ½‖LN(z) · γ + β − target‖²: with g = (LN(z) · γ + β − target) · γ, the LayerNorm's
    backward is (g − mean(g) − x̂ · mean(g · x̂)) / σ."""
    x_hat, inv_std = normalize(z)
    g = (x_hat * gamma + beta - target) * gamma
    return (g - g.mean(dim=-1, keepdim=True) - x_hat * (g * x_hat).mean(dim=-1, keepdim=True)) * inv_std


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def gelu_tanh_grad(x: torch.Tensor) -> torch.Tensor:
    """d/dx of 0.5 x (1 + tanh(u)), u = c (x + a x³)."""
    t = torch.tanh(GELU_C * (x + GELU_A * x * x * x))
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 3.0 * GELU_A * x * x)


def dual_matmul(q_act, x_act, delta, W, b, E_tril):
    """One matmul-plus-bias state in the dual form: the queries' outputs under the per-token
    updated state, and the state after the whole mini-batch (E's last row)."""
    attn = E_tril * (q_act @ x_act.transpose(-1, -2))
    z_bar = q_act @ W - attn @ delta + b.unsqueeze(-2) - E_tril @ delta
    e_last = E_tril[..., -1, :].unsqueeze(-1)  # [B, H, K, 1]: row j of X scaled by E[K−1, j]
    W_next = W - x_act.transpose(-1, -2) @ (e_last * delta)
    b_next = b - (e_last * delta).sum(dim=-2)
    return z_bar, W_next, b_next


def linear_step(q, k, v, E_tril, gamma, beta, s):
    """One mini-batch of TTT-Linear: f_res(x) = x W1 + b1."""
    z = k @ s["W1"] + s["b1"].unsqueeze(-2)
    delta = ln_l2_delta(z, v - k, gamma, beta)
    z_bar, W1, b1 = dual_matmul(q, k, delta, s["W1"], s["b1"], E_tril)
    return z_bar, {"W1": W1, "b1": b1}


def mlp_step(q, k, v, E_tril, gamma, beta, s):
    """One mini-batch of TTT-MLP: f_res(x) = gelu_tanh(x W1 + b1) W2 + b2."""
    z1 = k @ s["W1"] + s["b1"].unsqueeze(-2)
    hidden = gelu_tanh(z1)
    z2 = hidden @ s["W2"] + s["b2"].unsqueeze(-2)
    delta2 = ln_l2_delta(z2, v - k, gamma, beta)
    delta1 = (delta2 @ s["W2"].transpose(-1, -2)) * gelu_tanh_grad(z1)
    z1_bar, W1, b1 = dual_matmul(q, k, delta1, s["W1"], s["b1"], E_tril)
    z2_bar, W2, b2 = dual_matmul(gelu_tanh(z1_bar), hidden, delta2, s["W2"], s["b2"], E_tril)
    return z2_bar, {"W1": W1, "b1": b1, "W2": W2, "b2": b2}


STEPS = {"linear": linear_step, "mlp": mlp_step}


def forward(layer: str, q, k, v, lr, scale, gamma, beta, states: dict, out: torch.Tensor | None = None):
    """Runs the inner loop over all T tokens mini-batch by mini-batch; returns (output, states).

    out, when given, is a [B, H, T, D] tensor to write the output into (reused across calls)."""
    step = STEPS[layer]
    B, H, T, D = q.shape
    K = scale.shape[0]
    if T % K:
        raise ValueError(f"T = {T} is not a multiple of K = {K}")
    out = torch.empty_like(q) if out is None else out
    # E for every mini-batch at once, as the paper's code does: [B, H, T/K, K, K].
    E_tril = torch.tril(scale.unsqueeze(-1) * lr.view(B, H, T // K, 1, K))
    gamma, beta = gamma.unsqueeze(-2), beta.unsqueeze(-2)  # [H, 1, D]: broadcast over rows
    for n in range(T // K):
        rows = slice(n * K, (n + 1) * K)
        q_n = q[:, :, rows]
        z_bar, states = step(q_n, k[:, :, rows], v[:, :, rows], E_tril[:, :, n], gamma, beta, states)
        x_hat, _ = normalize(z_bar)
        out[:, :, rows] = q_n + x_hat * gamma + beta
    return out, states
