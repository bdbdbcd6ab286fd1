"""PPO's clipped surrogate over reply tokens, and the ratio statistics SB3 logs with it.

GRPO and SequencePPO differ in their advantages (group baselines; GAE with a critic), not in how
a probability ratio is clipped, so both losses start here.
"""

from __future__ import annotations

import torch

__all__ = ["clipped_surrogate", "masked_mean"]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """The mean of ``x`` over the positions where ``mask`` is 1 (0 when there are none), as a float."""
    return (x * mask).sum().item() / mask.sum().clamp(min=1).item()


def clipped_surrogate(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
    clip_range_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-token loss ``-min(r A, clip(r, 1 - clip_range, 1 + clip_range_high) A)``, ``r = pi / pi_old``.

    Args:
        logprobs: ``(B, T)`` log-probs of the reply tokens under the policy being updated.
        old_logprobs: ``(B, T)`` their log-probs at rollout time.
        advantages: ``(B, T)``, or ``(B, 1)`` when every token shares its reply's.
        mask: ``(B, T)`` float, 1 on reply tokens.
        clip_range: How far below 1 the ratio may go (and above, unless ``clip_range_high`` is set).
        clip_range_high: How far above 1 (DAPO's "clip-higher"); None: ``clip_range``.

    Returns:
        The ``(B, T)`` loss per token (the caller reduces it), and statistics over the reply tokens:
        ``approx_kl`` (the ``(r - 1) - log r`` estimator SB3 logs) and ``clip_fraction`` (the share
        of tokens whose ratio is outside either bound).

    >>> loss, stats = clipped_surrogate(torch.log(torch.tensor([[1.5, 0.5]])), torch.zeros(1, 2),
    ...                                 torch.ones(1, 1), torch.ones(1, 2), 0.2, 0.28)
    >>> [round(x, 4) for x in loss.tolist()[0]], stats["clip_fraction"]
    ([-1.28, -0.5], 1.0)
    """
    high = clip_range if clip_range_high is None else clip_range_high
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = log_ratio.exp()
    per_token = -torch.min(ratio * advantages, ratio.clamp(1 - clip_range, 1 + high) * advantages)
    with torch.no_grad():
        outside = (ratio < 1 - clip_range) | (ratio > 1 + high)
        stats = {
            "approx_kl": masked_mean((ratio - 1) - log_ratio, mask),
            "clip_fraction": masked_mean(outside.float(), mask),
        }
    return per_token, stats
