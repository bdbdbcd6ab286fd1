"""The fused AdamW helper against torch's plain loop."""

from __future__ import annotations

import torch

from agents.modeling.prepare import adamw


def test_fused_adamw_steps_as_the_plain_loop():
    torch.manual_seed(0)
    weights = [torch.randn(7, 5, requires_grad=True), torch.randn(3, requires_grad=True)]
    twins = [w.detach().clone().requires_grad_(True) for w in weights]
    fused = adamw(weights, lr=1e-2, weight_decay=0.1)
    plain = torch.optim.AdamW(twins, lr=1e-2, weight_decay=0.1)
    assert fused.defaults["fused"] and not plain.defaults["fused"]
    for _ in range(5):
        grads = [torch.randn_like(w) for w in weights]
        for w, t, g in zip(weights, twins, grads, strict=True):
            w.grad, t.grad = g.clone(), g.clone()
        fused.step()
        plain.step()
    for w, t in zip(weights, twins, strict=True):
        torch.testing.assert_close(w, t, atol=1e-6, rtol=1e-5)
