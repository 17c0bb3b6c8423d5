"""Token-level policy-loss pieces (SPEC §3), pure torch, shared by the OpenRLHF seam and ``asym-rl lite``.

Shapes: ``B`` sequences (rollouts) by ``T`` response tokens; ``mask`` is 1 on real response tokens.

Departures from the textbook PPO objective, all from the papers the baselines come from:
  * clip-higher (DAPO): separate ε_low and ε_high for the ratio clip;
  * token-level aggregation (DAPO): one mean over every token of the optimizer batch, not per sequence;
  * Dr.GRPO aggregation: per-sequence token *sum* divided by a constant (the maximum response length);
  * Entropy Advantage (Cheng et al. 2025): the advantage gets a bounded, detached entropy bonus per token.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch
from asym_eval.options import in_range, one_of, option, optional

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


@dataclass(frozen=True)
class EntropyAdvantage:
    """Entropy Advantage (Cheng et al. 2025, SPEC §3): per token A' = A + min(α·H_t, |A|/κ), H_t detached.
    Off while ``alpha`` is unset; both trainers read these two fields."""

    alpha: float | None = option(
        None,
        "--entropy_adv.alpha",
        "Entropy Advantage α (Cheng et al. 2025, SPEC §3): per token A' = A + min(α·H_t, |A|/κ), α >= 0; the "
        "paper uses 0.4. Unset: off.",
        check=optional(in_range(0)),
        aliases=("--entropy_adv_alpha",),
        metavar="ALPHA",
        type=float,
        show_default=False,
    )
    kappa: float = option(
        2.0,
        "--entropy_adv.kappa",
        "Entropy Advantage κ > 1: caps the bonus at |A|/κ so it never flips A's sign.",
        check=in_range(1, low_open=True),
        aliases=("--entropy_adv_kappa",),
        metavar="KAPPA",
    )

    @property
    def active(self) -> bool:
        return self.alpha is not None and self.alpha > 0


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


# ---- token-level entropy control: which tokens get a policy gradient (selection is always detached) ----

COV_MODES = ("clip_cov", "kl_cov")


def token_covariance(log_probs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token centred product (A_t − mean A)(log π_t − mean log π) (Cui et al. 2025, Eq. 4's summand): a token
    with a large value is one whose update lowers entropy most. Detached.

    The means are over the response tokens of the batch it is given: in training, one micro-batch on one rank
    (as verl, whose loss sees one micro-batch), not the whole optimizer step."""
    with torch.no_grad():
        log_probs, advantages = log_probs.detach().float(), advantages.detach().float().expand_as(log_probs)
        return (advantages - masked_mean(advantages, mask)) * (log_probs - masked_mean(log_probs, mask))


def stochastic_count(expected: float, generator: torch.Generator | None = None) -> int:
    """An integer count whose mean is exactly ``expected``: floor(expected), plus 1 with probability equal to its
    fractional part (stochastic rounding). One uniform is drawn whatever ``expected`` is, so a generator's stream
    does not depend on the batch's size.

    Why: Clip-Cov and KL-Cov act on ratio · n tokens of each micro-batch, and at the scripts' micro-batches
    (2 x 1,200 tokens, ratio 2e-4: 0.48 tokens) verl's max(1, int(ratio · n)) acts on 1 token, twice the flag.

    >>> [stochastic_count(2.0), stochastic_count(0.0)]
    [2, 0]
    """
    whole = int(expected // 1)
    return whole + int(torch.rand((), generator=generator).item() < expected - whole)


def cov_generator(seed: int, step: int, micro_batch: int) -> torch.Generator:
    """The CPU generator of one micro-batch's Clip-Cov / KL-Cov draws, seeded by (run seed, global step,
    micro-batch index) only: a rerun or a resumed run draws the same, and ranks that hold the same tokens
    (ring attention, tensor parallelism: every rank of the group computes the loss on the whole micro-batch)
    pick the same ones. Data-parallel ranks share the stream too; they hold different tokens."""
    digest = hashlib.blake2b(f"cov/{seed}/{step}/{micro_batch}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") >> 1)


def clip_cov_drop(
    covariance: torch.Tensor,
    mask: torch.Tensor,
    already_clipped: torch.Tensor,
    ratio: float = 2e-4,
    low: float = 1.0,
    high: float = 5.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Clip-Cov (Cui et al. 2025; verl's ``clip_cov``): a ``(B, T)`` bool of the tokens whose gradient is cut.

    ``stochastic_count(ratio · #tokens)`` tokens (ratio · #tokens on average; verl takes max(1, int(·)))
    drawn at random among those with low < covariance < high that the PPO clip has not cut already; fewer
    when fewer are eligible.
    """
    eligible = (covariance > low) & (covariance < high) & mask.bool() & ~already_clipped
    count = stochastic_count(ratio * int(mask.sum()), generator)
    candidates = torch.nonzero(eligible).cpu()
    order = torch.randperm(len(candidates), generator=generator)[: min(count, len(candidates))]
    chosen = candidates[order].to(eligible.device)
    drop = torch.zeros_like(eligible)
    drop[chosen[:, 0], chosen[:, 1]] = True
    return drop


def kl_cov_select(
    covariance: torch.Tensor,
    mask: torch.Tensor,
    ratio: float = 2e-4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """KL-Cov (Cui et al. 2025; verl's ``kl_cov``): a ``(B, T)`` bool of the ``stochastic_count(ratio ·
    #tokens)`` response tokens (ratio · #tokens on average; verl takes max(1, int(·))) with the largest
    covariance, which get the |log π − log π_old| penalty."""
    tokens = int(mask.sum())
    count = min(stochastic_count(ratio * tokens, generator), tokens)
    values = covariance.masked_fill(~mask.bool(), float("-inf")).reshape(-1)
    selected = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    selected[torch.topk(values, count).indices] = True
    return selected.view(covariance.shape) & mask.bool()


def top_entropy_keep(entropy: torch.Tensor, mask: torch.Tensor, rho: float = 0.2) -> torch.Tensor:
    """Top-entropy-token training (Wang et al. 2025, "Beyond the 80/20 Rule"): a ``(B, T)`` bool of the
    ceil(rho · #tokens) response tokens of highest (detached) entropy, the only ones that keep a gradient."""
    values = entropy.detach().float().masked_fill(~mask.bool(), float("-inf")).reshape(-1)
    tokens = int(mask.sum())
    count = min(max(int(-(-rho * tokens // 1)), 1), tokens) if tokens else 0
    keep = torch.zeros(values.shape, dtype=torch.bool, device=values.device)
    if count:
        keep[torch.topk(values, count).indices] = True
    return keep.view(entropy.shape) & mask.bool()


@dataclass(frozen=True)
class TokenControl:
    """Token-level entropy control, combinable with any advantage estimator (flags in ``cli/flags.py``).

    Attributes:
        cov_mode: None, "clip_cov" or "kl_cov" (Cui et al. 2025, arXiv 2505.22617; verl's semantics).
        cov_ratio: the expected fraction of a micro-batch's response tokens they act on. 2e-4 is the default
            of verl's ``PolicyLossConfig`` (``clip_cov_ratio``, ``kl_cov_ratio``) and the paper's Clip-Cov r.
            For KL-Cov the paper and verl's recipe use k = 2e-3 with Qwen2.5-7B (``recipe/entropy/
            7b_kl_cov.sh``: ``kl_cov_ratio=0.002``), ten times this default.
        clip_cov_low, clip_cov_high: Clip-Cov's covariance bounds (verl's and the paper's 1 and 5).
        kl_cov_coef: KL-Cov's coefficient of |log π − log π_old|. 1 is the value of the paper's recipes
            (``ppo_kl_coef=1``) and of verl's ``core_algos`` fallback; verl's ``PolicyLossConfig`` default is 0.1.
        top_entropy_rho: None, or the fraction ρ of highest-entropy response tokens that keep a gradient
            (Wang et al. 2025, arXiv 2506.01939; the paper's ρ = 0.2).
    """

    cov_mode: str | None = option(
        None,
        "--cov.mode",
        "Clip-Cov or KL-Cov (Cui et al. 2025, arXiv 2505.22617, as verl's clip_cov / kl_cov): cut the gradient "
        "of a few random tokens of high Cov(log π, A), or add coef·|log π − log π_old| to the highest-covariance "
        "ones (KL-Cov drops the ratio clip, as verl).",
        check=optional(one_of(COV_MODES)),
        metavar="{" + ",".join(COV_MODES) + "}",
    )
    cov_ratio: float = option(
        2e-4,
        "--cov.ratio",
        "expected fraction of each micro-batch's response tokens Clip-Cov / KL-Cov act on, in (0, 1] (the count "
        "is rounded stochastically, so the fraction holds at any micro-batch size; logged as actor/cov_frac). "
        "The default is verl's PolicyLossConfig; the paper's KL-Cov k for Qwen2.5-7B is 2e-3.",
        check=in_range(0, 1, low_open=True),
        metavar="R",
    )
    clip_cov_low: float = option(
        1.0,
        "--cov.clip_lb",
        "Clip-Cov: lower covariance bound of the tokens it may cut (verl's).",
        check=in_range(-math.inf, math.inf),
        metavar="C",
    )
    clip_cov_high: float = option(
        5.0,
        "--cov.clip_ub",
        "Clip-Cov: upper covariance bound of the tokens it may cut (verl's).",
        check=in_range(-math.inf, math.inf),
        metavar="C",
    )
    kl_cov_coef: float = option(
        1.0,
        "--cov.kl_coef",
        "KL-Cov: coefficient of the |log-ratio| penalty, > 0 (the paper's recipes; verl's PolicyLossConfig "
        "default is 0.1).",
        check=in_range(0, low_open=True),
        metavar="K",
    )
    top_entropy_rho: float | None = option(
        None,
        "--top_entropy.rho",
        "top-entropy-token training (Wang et al. 2025, 'Beyond the 80/20 Rule', arXiv 2506.01939): only the "
        "fraction ρ of response tokens of highest (detached) entropy get a policy gradient; the paper uses 0.2. "
        "Unset: off.",
        check=optional(in_range(0, 1, low_open=True)),
        metavar="RHO",
        type=float,
        show_default=False,
    )

    @property
    def active(self) -> bool:
        return self.cov_mode is not None or self.top_entropy_rho is not None


def controlled_token_loss(
    log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float,
    eps_high: float,
    control: TokenControl | None = None,
    entropy: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The one per-token policy loss of both training paths: the clipped surrogate (Eq. 2), with the token
    control applied. Returns ``(loss, clipped, cov)``: ``(B, T)`` losses, where the PPO ratio clip was active
    (``actor/clip_frac``), and the tokens Clip-Cov cut or KL-Cov penalised (``actor/cov_frac``).

    Where ours follows verl and where it differs: KL-Cov, as verl's ``kl_cov``, drops the ratio clip and adds
    coef·|log π − log π_old| on its tokens; both act on ``stochastic_count(ratio · tokens)`` tokens, drawn from
    ``generator`` (verl: max(1, int(ratio · tokens)) with torch's global generator); the top-entropy loss is
    scaled by 1/ρ so that the kept tokens' mean sets the gradient's size, as Wang et al.'s masked mean does
    (exact when every micro-batch keeps the same fraction).
    """
    control = control or TokenControl()
    log_ratio = log_probs - old_log_probs
    cov = torch.zeros_like(mask, dtype=torch.bool)
    if control.cov_mode == "kl_cov":
        loss = -torch.exp(log_ratio) * advantages
        clipped = torch.zeros_like(mask, dtype=torch.bool)
        covariance = token_covariance(log_probs, advantages, mask)
        cov = kl_cov_select(covariance, mask, control.cov_ratio, generator)
        loss = loss + control.kl_cov_coef * log_ratio.abs() * cov
    else:
        loss, clipped = clipped_surrogate_loss(log_probs, old_log_probs, advantages, eps_low, eps_high)
        if control.cov_mode == "clip_cov":
            covariance = token_covariance(log_probs, advantages, mask)
            cov = clip_cov_drop(
                covariance,
                mask,
                clipped,
                control.cov_ratio,
                control.clip_cov_low,
                control.clip_cov_high,
                generator,
            )
            loss = loss.masked_fill(cov, 0.0)
    if control.top_entropy_rho is not None:
        if entropy is None:
            raise ValueError("top-entropy token training needs the policy's per-token entropy")
        keep = top_entropy_keep(entropy, mask, control.top_entropy_rho)
        loss = loss.masked_fill(~keep, 0.0) / control.top_entropy_rho
    return loss, clipped & mask.bool(), cov
