"""Token-level policy-loss pieces (SPEC §3), pure torch, shared by the OpenRLHF seam and ``asym-rl lite``.

Shapes: ``B`` sequences (rollouts) by ``T`` response tokens; ``mask`` is 1 on real response tokens.

Departures from the textbook PPO objective, all from the papers the baselines come from:
  * clip-higher (DAPO): separate ε_low and ε_high for the ratio clip;
  * token-level aggregation (DAPO): one mean over every token of the optimizer batch, not per sequence;
  * Dr.GRPO aggregation: per-sequence token *sum* divided by a constant (the maximum response length);
  * Entropy Advantage (Cheng et al. 2025): the advantage gets a bounded, detached entropy bonus per token.
"""

from __future__ import annotations

import torch

AGGREGATIONS = ("token_mean", "seq_sum_constant")


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is 1; 0 (not NaN) where the mask is empty."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp_min(1.0)
    return (values * mask).sum(dim) / mask.sum(dim).clamp_min(1.0)


def clipped_surrogate_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token negative PPO objective, Eq. 2 with clip-higher.

    loss_t = -min(ρ_t A_t, clip(ρ_t, 1-ε_low, 1+ε_high) A_t),  ρ_t = exp(log π - log π_old).

    Args:
        log_probs, old_log_probs: ``(B, T)`` log-probabilities of the sampled tokens.
        advantages: ``(B, T)`` (or broadcastable, e.g. ``(B, 1)``) advantages.
    Returns:
        ``(loss, clipped)``: ``(B, T)`` per-token loss and a ``(B, T)`` bool of where the clip was active.
    """
    ratio = torch.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def aggregate_loss(
    token_loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token_mean",
    max_response_len: int | None = None,
) -> torch.Tensor:
    """Reduce ``(B, T)`` per-token losses to a scalar.

    ``token_mean`` (DAPO): Σ_tokens loss / #tokens over the whole batch, so long rollouts weigh more.
    ``seq_sum_constant`` (Dr.GRPO): mean over sequences of (Σ_t loss_t) / ``max_response_len``: no division
    by each rollout's own length, which is the length bias Dr.GRPO removes.

    For several micro-batches of one optimizer step to add up to the same value as one big batch, the caller
    scales: token_mean by (micro-batch tokens / step tokens), seq_sum_constant by (micro B / step B).
    """
    if mode == "token_mean":
        return masked_mean(token_loss, mask)
    if mode == "seq_sum_constant":
        if not max_response_len or max_response_len <= 0:
            raise ValueError("seq_sum_constant aggregation needs max_response_len > 0")
        return ((token_loss * mask).sum(dim=-1) / max_response_len).mean()
    raise ValueError(f"unknown loss aggregation {mode!r}; choose from {', '.join(AGGREGATIONS)}")


def entropy_shaped_advantages(
    advantages: torch.Tensor, token_entropy: torch.Tensor, alpha: float = 0.4, kappa: float = 2.0
) -> torch.Tensor:
    """Entropy Advantage (Cheng et al. 2025): A'_t = A + min(α·H_t, |A|/κ), H_t detached.

    The bonus is capped at |A|/κ with κ > 1, so it never flips the sign of A and leaves A = 0 at 0.
    ``advantages`` broadcasts against ``(B, T)`` ``token_entropy``.
    """
    if kappa <= 1:
        raise ValueError(f"kappa must be > 1 so that the bonus cannot flip an advantage's sign, got {kappa}")
    bonus = torch.minimum(alpha * token_entropy.detach(), advantages.abs() / kappa)
    return advantages + bonus


def entropy_regularized(loss: torch.Tensor, mean_entropy: torch.Tensor, coef: float) -> torch.Tensor:
    """Entropy regularization: loss - c·H̄ (SPEC §3; c = 0.001 in the paper)."""
    return loss - coef * mean_entropy
