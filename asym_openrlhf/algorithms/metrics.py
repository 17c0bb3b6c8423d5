"""Training metrics the paper plots (SPEC §4), pure torch.

Metric names are slash-namespaced and documented once, in ``METRICS``; the OpenRLHF seam and ``asym-rl lite``
log them under these names.
"""

from __future__ import annotations

import torch

from asym_openrlhf.algorithms.losses import masked_mean

METRICS: dict[str, str] = {
    "rollout/accuracy": "mean binary correctness of the step's rollouts",
    "rollout/all_solved_frac": "fraction of groups with p = 1 (every rollout correct)",
    "rollout/none_solved_frac": "fraction of groups with p = 0 (no rollout correct)",
    "rollout/acc_hist/c{c}": "fraction of groups with exactly c correct rollouts, c = 0..G",
    "rollout/response_length": "mean response length in tokens",
    "actor/entropy": "token-mean policy entropy of the sampled responses (Eq. 3)",
    "actor/entropy_pos": "the same over the response tokens of correct rollouts (informative entropy)",
    "actor/entropy_neg": "the same over the response tokens of wrong rollouts (spurious entropy)",
    "rollout/unique_correct_frac": "over groups with a correct rollout: distinct correct responses / correct ones",
    "actor/beta_pos": "beta+ the step's advantages used (moves under --asym.beta_schedule)",
    "actor/beta_neg": "beta- the step's advantages used (moves under --asym.beta_schedule)",
    "actor/pos_logprob_gain": "E[log pi_new(y) - log pi_old(y)] over correct rollouts after the step's update",
    "actor/logp_adv_cov": "mean over groups of Cov_group(length-normalized log pi, A) (App. B, Eq. 12-14)",
    "actor/logp_adv_cov/c{c}": "the same covariance, averaged over groups with c correct rollouts",
    "actor/clip_frac": "fraction of response tokens where the PPO ratio clip was active",
    "actor/cov_frac": "fraction of response tokens Clip-Cov cut or KL-Cov penalised (expected: --cov.ratio)",
    "actor/policy_loss": "the aggregated policy loss",
    "eval/accuracy": "greedy (temperature 0) accuracy on held-out prompts",
    "eval/pass_at_{k}": "unbiased pass@k on held-out prompts from n samples at the rollout temperature, k = 1, 2, 4, ... n "
    "(n = G; lite: --pass_curve_samples n at step 0 and the last step)",
    "actor/weight_sync_logprob_diff": "largest abs. difference of vLLM's and the policy's log-probs of vLLM's "
    "greedy tokens after the weight sync (OpenRLHF, --asym.check_weight_sync)",
}
# Metrics of the OpenRLHF path only: asym-rl lite samples from the policy it trains, so it has no weights to sync.
OPENRLHF_ONLY = frozenset({"actor/weight_sync_logprob_diff"})


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax over the last dim: ``(..., V)`` logits -> ``(...)`` entropies (nats).

    H = logsumexp(z) - Σ softmax(z)·z, which avoids materializing log-softmax a second time.
    """
    logits = logits.float()
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)


def token_entropy_no_grad(logits: torch.Tensor, chunk_rows: int = 512) -> torch.Tensor:
    """``token_entropy`` for logging and detached uses: ``(..., V)`` logits -> ``(...)`` fp32 entropies.

    Computed without grad, ``chunk_rows`` rows at a time: nothing is saved for backward, and the softmax
    temporaries are (chunk_rows, V) instead of (tokens, V), about 0.3 GB each at a 152k vocabulary.

    >>> token_entropy_no_grad(torch.zeros(2, 3, 4), chunk_rows=4).exp()  # uniform over 4: H = log 4
    tensor([[4., 4., 4.],
            [4., 4., 4.]])
    """
    rows = logits.reshape(-1, logits.shape[-1])  # (N, V), a view of contiguous logits
    entropy = torch.empty(rows.shape[0], dtype=torch.float32, device=logits.device)
    with torch.no_grad():
        for start in range(0, rows.shape[0], chunk_rows):
            entropy[start : start + chunk_rows] = token_entropy(rows[start : start + chunk_rows])
    return entropy.view(logits.shape[:-1])


def solved_fractions(correct: torch.Tensor) -> dict[str, float]:
    """All-solved and none-solved fractions of ``(P, G)`` binary correctness."""
    correct = correct.bool()
    return {
        "rollout/all_solved_frac": correct.all(dim=1).float().mean().item(),
        "rollout/none_solved_frac": (~correct.any(dim=1)).float().mean().item(),
    }


def group_accuracy_histogram(correct: torch.Tensor) -> torch.Tensor:
    """``(G+1,)`` fraction of the P groups that have c = 0..G correct rollouts."""
    num_correct = correct.bool().sum(dim=1)
    counts = torch.bincount(num_correct, minlength=correct.shape[1] + 1).float()
    return counts / max(correct.shape[0], 1)


def group_logp_adv_covariance(mean_logp: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """Appendix B, Eq. 12-14: Cov_group = (1/G) Σ_i (log π̄_i - μ_π)(A_i - μ_A), per group.

    Args:
        mean_logp: ``(P, G)`` length-normalized log-probabilities (mean token log-prob of each rollout).
        advantages: ``(P, G)`` rollout advantages.
    Returns:
        ``(P,)`` covariances (population form, 1/G).
    """
    centred_logp = mean_logp - mean_logp.mean(dim=1, keepdim=True)
    centred_adv = advantages - advantages.mean(dim=1, keepdim=True)
    return (centred_logp * centred_adv).mean(dim=1)


def covariance_by_accuracy(covariance: torch.Tensor, correct: torch.Tensor) -> dict[int, float]:
    """Cov(p): mean of the ``(P,)`` group covariances over groups with c correct, for each c present."""
    num_correct = correct.bool().sum(dim=1)
    return {int(c): covariance[num_correct == c].mean().item() for c in torch.unique(num_correct)}


def positive_logprob_gain(
    new_logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, correct: torch.Tensor
):
    """E[log π_new(y) - log π_old(y)] over correct rollouts (Fig. 2 d,h); None when none is correct.

    Args:
        new_logp, old_logp: ``(B, T)`` token log-probs of the sampled responses after / before the update.
        mask: ``(B, T)`` response mask. correct: ``(B,)`` binary correctness.
    """
    gain = ((new_logp - old_logp) * mask).sum(dim=-1)  # (B,) sequence log-prob increment
    correct = correct.bool()
    return gain[correct].mean().item() if correct.any() else None


def mean_token_entropy(entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean entropy over a batch (``actor/entropy``): Σ mask·H / Σ mask, 0 for an empty mask."""
    return masked_mean(entropy, mask)


def entropy_by_correctness(
    entropy: torch.Tensor, mask: torch.Tensor, correct: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Token sums and counts of entropy over correct and over wrong rollouts, the parts of
    ``actor/entropy_pos`` and ``actor/entropy_neg`` (sum / count).

    Sums and counts rather than means, so that micro-batches and ranks can be added up exactly first.

    Args:
        entropy, mask: ``(B, T)`` token entropies and response mask. correct: ``(B,)`` binary correctness.
    Returns:
        ``{"pos_sum", "pos_tokens", "neg_sum", "neg_tokens"}``, 0-dim float tensors.
    """
    mask = mask.float()
    is_correct = correct.reshape(-1, 1).bool().to(mask.device)
    parts = {}
    for side, rows in (("pos", is_correct), ("neg", ~is_correct)):
        side_mask = mask * rows
        parts[f"{side}_sum"] = (entropy.float() * side_mask).sum()
        parts[f"{side}_tokens"] = side_mask.sum()
    return parts


def entropy_pos_neg(parts: dict[str, torch.Tensor | float]) -> dict[str, float | None]:
    """``actor/entropy_pos`` / ``actor/entropy_neg`` from ``entropy_by_correctness``'s (added-up) parts; a side
    without tokens (no correct, or no wrong rollout) is None rather than a misleading 0."""
    out = {}
    for side in ("pos", "neg"):
        tokens = float(parts[f"{side}_tokens"])
        out[f"actor/entropy_{side}"] = float(parts[f"{side}_sum"]) / tokens if tokens > 0 else None
    return out


def unique_correct_fraction(responses: list[list], correct: torch.Tensor) -> float | None:
    """``rollout/unique_correct_frac``: over groups with at least one correct rollout, the number of distinct
    correct responses divided by the number of correct ones (1 = every success is a different solution).

    Args:
        responses: ``P`` groups of ``G`` hashable responses (token tuples or texts). correct: ``(P, G)``.
    Returns:
        The fraction pooled over those groups (distinct / correct, each summed over groups), None if none.
    """
    distinct, total = 0, 0
    for group, hits in zip(responses, correct.bool().tolist()):
        solved = [response for response, hit in zip(group, hits) if hit]
        distinct, total = distinct + len(set(solved)), total + len(solved)
    return distinct / total if total else None


def rollout_metrics(
    correct: torch.Tensor,
    responses: list[list],
    mean_logp: torch.Tensor | None = None,
    advantages: torch.Tensor | None = None,
) -> dict[str, float]:
    """The group metrics of one rollout batch, before its update: what both trainers log under ``rollout/`` and
    the log-prob / advantage covariance (App. B).

    Args:
        correct: ``(P, G)`` binary correctness. responses: ``P`` groups of ``G`` hashable responses.
        mean_logp, advantages: ``(P, G)`` length-normalized log-probs and rollout advantages, or None (the
            covariance is then left out).

    >>> m = rollout_metrics(torch.tensor([[1, 1], [0, 1]]), [["a", "a"], ["b", "c"]])
    >>> m["rollout/accuracy"], m["rollout/all_solved_frac"], m["rollout/unique_correct_frac"]
    (0.75, 0.5, 0.6666666666666666)
    """
    correct = correct.bool()
    metrics = {"rollout/accuracy": correct.float().mean().item(), **solved_fractions(correct)}
    for count, fraction in enumerate(group_accuracy_histogram(correct).tolist()):
        metrics[f"rollout/acc_hist/c{count}"] = fraction
    unique = unique_correct_fraction(responses, correct)
    if unique is not None:
        metrics["rollout/unique_correct_frac"] = unique
    if mean_logp is not None and advantages is not None:
        covariance = group_logp_adv_covariance(mean_logp, advantages)  # (P,)
        metrics["actor/logp_adv_cov"] = covariance.mean().item()
        for count, value in covariance_by_accuracy(covariance, correct).items():
            metrics[f"actor/logp_adv_cov/c{count}"] = value
    return metrics


def ema_over_steps(steps: list[int], values: list[float], factor: float = 0.7) -> list[float]:
    """The EMA with its decay counted in training steps, not logged points: s = f^d·s + (1-f^d)·x, d the steps
    since the previous point. Equal to ``ema`` for a metric logged every step; for one logged every 10 steps
    (validation) a point's weight is what 10 steps of decay leave, so 3 sparse points do not drag the curve
    back to the first (``ema`` there ends at 0.57 for points 0.4, 0.6, 0.82).

    >>> [round(v, 3) for v in ema_over_steps([0, 1, 2], [1.0, 0.0, 0.0], 0.5)] == ema([1.0, 0.0, 0.0], 0.5)
    True
    >>> [round(v, 3) for v in ema_over_steps([0, 10, 20], [0.4, 0.6, 0.82])]
    [0.4, 0.594, 0.814]
    """
    smoothed, state, last = [], None, None
    for step, value in zip(steps, values):
        if value is not None:
            if state is None:
                state = value
            else:
                decay = factor ** max(step - last, 1)
                state = decay * state + (1 - decay) * value
            last = step
        smoothed.append(state)
    return smoothed


def ema(values: list[float], factor: float = 0.7) -> list[float]:
    """Exponential moving average as the paper smooths its curves: s_t = factor·s_{t-1} + (1-factor)·x_t.

    None entries (a step without that metric) carry the previous smoothed value forward.
    """
    smoothed, state = [], None
    for value in values:
        if value is not None:
            state = value if state is None else factor * state + (1 - factor) * value
        smoothed.append(state)
    return smoothed
