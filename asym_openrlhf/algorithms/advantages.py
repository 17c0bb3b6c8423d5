"""Group-relative advantage estimators for binary verifiable rewards, behind one registry.

Every estimator in this project sees a group of G rollouts of one prompt, each either correct or wrong, and
gives each rollout one scalar advantage that is then put on all of its tokens (SPEC §1). With binary rewards
the advantage of a rollout depends only on its own correctness and on how many of the G are correct, so each
estimator is written once as a pair of *curves*: ``adv_pos[c]`` for a correct rollout and ``adv_neg[c]`` for
a wrong one, for c = 0..G correct rollouts. The same curves feed the training paths (``compute_advantages``)
and ``asym-rl advantage-table``, so no formula exists twice.

Registry entries (``ESTIMATORS``), names as OpenRLHF uses them where it has the same method:

=================  =====================================================================================
``asym_grpo``      AsymGRPO, Eq. 7/10: A_pos = ((1-p)/p)^β+, A_neg = -(p/(1-p))^β-, with optional flips
                   (Appendix D): ``flip="pos"`` is EntDecrease, ``flip="neg"`` is EntIncrease.
``group_norm``     GRPO, Eq. 4: (r - mean) / (std + ε), unbiased std as OpenRLHF, verl and TRL compute it.
``dr_grpo``        Dr.GRPO (Liu et al. 2025): r - mean, no std.
``pass_at_k``      Pass@K training (Chen et al. 2025), option ``k``.
presets            ``reinforce_pm1`` (0, 0), ``pos_only`` (0.5, 0), ``neg_only`` (0, 0.5), ``symmetric``
                   (0.7, 0.7), ``main`` (0.9, 0.4), ``main_clip_higher`` (0.9, 0.3), ``ent_decrease`` and
                   ``ent_increase`` (0.5, 0.5 flipped): AsymGRPO with fixed options. ``w_reinforce``
                   (+0.1/-1), ``psr`` (+1/0), ``nsr`` (0/-1): REINFORCE with channel weights (Zhu et al.).
every estimator    options ``scale_pos`` / ``scale_neg`` multiply its correct / wrong curve.
=================  =====================================================================================

>>> import torch
>>> compute_advantages("group_norm", torch.tensor([[1, 0, 0, 0]])).round(decimals=4).tolist()  # std 1/2 (+1e-6)
[[1.5, -0.5, -0.5, -0.5]]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

import torch
from asym_eval.options import in_range, one_of, option, optional, validate

FLIPS = ("none", "pos", "neg")
BETA_SCHEDULES = ("constant", "linear", "cosine")
MAX_BETA = 4.0  # β beyond this only magnifies float error; SPEC guarantees finiteness on [0, 4].
MAX_SCALE = 10.0  # a channel weight is a few times 1 at most; 10 catches a typo such as 100 for 1.00
GRPO_STD_EPS = 1e-6  # as verl and TRL; OpenRLHF uses 1e-9. Only matters for all-same groups, where A = 0.


@dataclass(frozen=True)
class AdvantageOptions:
    """Options of the estimators. Each estimator reads only its own; presets fix theirs.

    Attributes:
        beta_pos: β+ of AsymGRPO (Eq. 10), exponent of the correct-rollout curve ((1-p)/p)^β+.
            0 gives REINFORCE's +1 everywhere, 0.5 GRPO's curve; larger values favour rare successes.
        beta_neg: β− of AsymGRPO, exponent of the wrong-rollout curve -(p/(1-p))^β−.
            0 gives REINFORCE's -1, 0.5 GRPO's; larger values spare hard prompts and punish easy ones.
        flip: "none"; "pos" reflects the positive curve around p = 0.5 (EntDecrease); "neg" reflects the
            negative curve (EntIncrease). Appendix D, boundary values by linear extension (Eq. 15/16).
        k: K of Pass@K training, 1 <= K <= G. K = 1 is GRPO with the population std.
        scale_pos, scale_neg: channel weights, multiplying the correct and the wrong rollouts' curve of any
            estimator (default 1). W-REINFORCE (Zhu et al. 2025, arXiv 2506.01347) is REINFORCE with
            scale_pos = λ = 0.1; PSR keeps only the positive channel (scale_neg = 0), NSR only the negative.
        beta_schedule, beta_pos_end, beta_neg_end: move β+ / β− from beta_pos / beta_neg at the first training
            step to the end values at the last ("linear" or "cosine"; an end left None keeps that β fixed).
            ``options_at`` resolves them for a step; the curves read only the resolved β.
    """

    beta_pos: float = option(
        0.9,
        "--asym.beta_pos",
        "AsymGRPO β+ (Eq. 10): correct rollouts get ((1-p)/p)^β+. 0 = REINFORCE's +1, 0.5 = GRPO.",
        check=in_range(0, MAX_BETA),
        metavar="BETA",
    )
    beta_neg: float = option(
        0.4,
        "--asym.beta_neg",
        "AsymGRPO β− (Eq. 10): wrong rollouts get -(p/(1-p))^β−. 0 = REINFORCE's -1, 0.5 = GRPO.",
        check=in_range(0, MAX_BETA),
        metavar="BETA",
    )
    flip: str = option(
        "none",
        "--asym.flip",
        "reflect a curve around p = 0.5 (App. D): pos = EntDecrease, neg = EntIncrease.",
        check=one_of(FLIPS),
        metavar="{" + ",".join(FLIPS) + "}",
    )
    k: int = option(
        5,
        "--pass_k.k",
        "K of Pass@K training, 1 <= K <= group size (the paper's is 5).",
        check=in_range(1, integer=True),
        metavar="K",
    )
    scale_pos: float = option(
        1.0,
        "--asym.scale_pos",
        "channel weight: multiplies the correct rollouts' advantage curve of any estimator "
        "(W-REINFORCE, Zhu et al. 2025, arXiv 2506.01347, is --advantage_estimator w_reinforce: +λ/-1, λ = 0.1).",
        check=in_range(0, MAX_SCALE),
        metavar="W",
    )
    scale_neg: float = option(
        1.0,
        "--asym.scale_neg",
        "channel weight: multiplies the wrong rollouts' advantage curve of any estimator (psr and nsr keep "
        "one channel).",
        check=in_range(0, MAX_SCALE),
        metavar="W",
    )
    beta_schedule: str = option(
        "constant",
        "--asym.beta_schedule",
        "move β+ / β− over the run's training steps, from --asym.beta_pos / --asym.beta_neg at the first to "
        "--asym.beta_pos_end / --asym.beta_neg_end at the last: linear, or cosine (slow at both ends). Beyond "
        "the paper, which fixes β (its Limitations).",
        check=one_of(BETA_SCHEDULES),
        metavar="{" + ",".join(BETA_SCHEDULES) + "}",
    )
    beta_pos_end: float | None = option(
        None,
        "--asym.beta_pos_end",
        "β+ at the last training step under --asym.beta_schedule; unset: β+ stays fixed.",
        check=optional(in_range(0, MAX_BETA)),
        metavar="BETA",
        type=float,
    )
    beta_neg_end: float | None = option(
        None,
        "--asym.beta_neg_end",
        "β− at the last training step under --asym.beta_schedule; unset: β− stays fixed.",
        check=optional(in_range(0, MAX_BETA)),
        metavar="BETA",
        type=float,
    )

    def validate(self, group_size: int | None = None) -> None:
        """Raise ``ValueError`` naming the option that is out of range (its declared check, then the ties
        between options)."""
        validate(self)
        ends = [name for name in ("beta_pos_end", "beta_neg_end") if getattr(self, name) is not None]
        if (self.beta_schedule == "constant") != (not ends):
            raise ValueError(
                "beta_schedule needs an end value (beta_pos_end and/or beta_neg_end), and an end value needs "
                f"a beta_schedule other than constant; got beta_schedule={self.beta_schedule!r}, ends {ends}"
            )
        if group_size is not None and self.k > group_size:
            raise ValueError(f"k must be <= the group size G = {group_size}, got k = {self.k}")


def options_at(options: AdvantageOptions, step: int, total_steps: int) -> AdvantageOptions:
    """``options`` with β+ / β− moved along their schedule to training step ``step`` of ``total_steps``.

    Step 0 (the first update) has the start values and step ``total_steps - 1`` (the last) the end values;
    linear moves at a constant rate, cosine as (1 - cos(pi t)) / 2, slow at both ends. The result has a
    constant schedule, so resolving it again changes nothing.
    """
    if options.beta_schedule == "constant":
        return options
    t = min(max(step / max(total_steps - 1, 1), 0.0), 1.0)
    weight = t if options.beta_schedule == "linear" else (1 - math.cos(math.pi * t)) / 2

    def move(start: float, end: float | None) -> float:
        return start if end is None else start + (end - start) * weight

    return replace(
        options,
        beta_pos=move(options.beta_pos, options.beta_pos_end),
        beta_neg=move(options.beta_neg, options.beta_neg_end),
        beta_schedule="constant",
        beta_pos_end=None,
        beta_neg_end=None,
    )


def beta_metrics(name: str, options: AdvantageOptions) -> dict[str, float]:
    """``actor/beta_pos`` / ``actor/beta_neg`` for an estimator that reads β (resolved: presets' values)."""
    estimator = get_estimator(name)
    if "beta_pos" not in estimator.reads and "beta_pos" not in estimator.fixed:
        return {}
    resolved = estimator.resolve(options)
    return {"actor/beta_pos": float(resolved.beta_pos), "actor/beta_neg": float(resolved.beta_neg)}


CurveFn = Callable[[int, AdvantageOptions], "tuple[torch.Tensor, torch.Tensor]"]


@dataclass(frozen=True)
class Estimator:
    """A registered estimator: its curves, what it reads, and the options a preset fixes."""

    name: str
    curves: CurveFn
    description: str
    reads: tuple[str, ...] = ()  # option names the curves depend on
    fixed: dict = field(default_factory=dict)  # options a preset pins (and the user may not override)
    min_group_size: int = 2
    # The loss aggregation the method is defined with; both trainers derive theirs from it (Dr.GRPO: the token
    # sum over a constant, ``losses.aggregate_loss``).
    loss_aggregation: str = "token_mean"

    def resolve(self, options: AdvantageOptions | None = None) -> AdvantageOptions:
        """The options this estimator runs with: the user's, with the preset's fixed values on top."""
        return replace(options or AdvantageOptions(), **self.fixed)


ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(
    name: str,
    description: str,
    *,
    reads: tuple[str, ...] = (),
    fixed: dict | None = None,
    min_group_size: int = 2,
    loss_aggregation: str = "token_mean",
    curves: CurveFn | None = None,
):
    """Register ``curves`` (or, used as a decorator, the decorated function) under ``name``.

    Registering a name twice raises: two entries silently shadowing each other is how trainers drift.
    """
    known = {f.name for f in fields(AdvantageOptions)}
    unknown = (set(reads) | set(fixed or {})) - known
    if unknown:
        raise ValueError(f"estimator {name!r} names unknown options {sorted(unknown)}")

    def add(fn: CurveFn) -> CurveFn:
        if name in ESTIMATORS:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        ESTIMATORS[name] = Estimator(
            name, fn, description, tuple(reads), dict(fixed or {}), min_group_size, loss_aggregation
        )
        return fn

    return add(curves) if curves is not None else add


# OpenRLHF's estimators that are not binary-reward group curves: only the OpenRLHF launcher runs them, on
# upstream's own code. Every other name means the same algorithm in every command (group_norm and dr_grpo
# included: the launcher runs them through this registry too).
OPENRLHF_ONLY = {
    "gae": "PPO's GAE with a critic",
    "reinforce": "REINFORCE on the raw reward whitened over the batch, not the paper's +1/-1 (reinforce_pm1)",
    "rloo": "RLOO, a leave-one-out baseline",
    "reinforce_baseline": "REINFORCE with the group mean as baseline, whitened over the batch",
    "flash_reinforce": "REINFORCE with the batch mean as baseline",
}


def get_estimator(name: str) -> Estimator:
    try:
        return ESTIMATORS[name]
    except KeyError:
        if name in OPENRLHF_ONLY:
            raise ValueError(
                f"{name!r} is OpenRLHF's own estimator ({OPENRLHF_ONLY[name]}): only the OpenRLHF launcher "
                f"runs it; this command knows {', '.join(ESTIMATORS)}"
            ) from None
        raise ValueError(
            f"unknown advantage estimator {name!r}; choose from {', '.join(ESTIMATORS)}"
        ) from None


def _counts(group_size: int) -> torch.Tensor:
    """Group accuracies p = c/G for c = 0..G, float64 so that curves are exact to print. Shape (G+1,)."""
    return torch.arange(group_size + 1, dtype=torch.float64) / group_size


def _power(base: torch.Tensor, exponent: float) -> torch.Tensor:
    # torch.pow gives 0^0 = 1, which is the convention of Eq. 10 at the boundaries.
    return torch.pow(base, exponent)


def _safe_ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """num/den where den > 0, else 0. Never divides by zero, so no inf reaches a later 0 * inf."""
    positive = den > 0
    return torch.where(
        positive, num / torch.where(positive, den, torch.ones_like(den)), torch.zeros_like(num)
    )


def asym_pos_curve(p: torch.Tensor, beta: float) -> torch.Tensor:
    """A_pos(p) = ((1-p)/p)^β (Eq. 10); at p = 1 it is 0^β. Undefined (no positive rollout) at p = 0: 0."""
    return torch.where(p > 0, _power(_safe_ratio(1 - p, p), beta), torch.zeros_like(p))


def asym_neg_curve(p: torch.Tensor, beta: float) -> torch.Tensor:
    """A_neg(p) = -(p/(1-p))^β (Eq. 10); at p = 0 it is -0^β. Undefined (no wrong rollout) at p = 1: 0."""
    return torch.where(p < 1, -_power(_safe_ratio(p, 1 - p), beta), torch.zeros_like(p))


def _asym_curves(group_size: int, opts: AdvantageOptions) -> tuple[torch.Tensor, torch.Tensor]:
    p = _counts(group_size)
    adv_pos = asym_pos_curve(p, opts.beta_pos)
    adv_neg = asym_neg_curve(p, opts.beta_neg)
    g = group_size
    if opts.flip == "pos":
        # EntDecrease (Eq. 15): Ã_pos(p) = A_pos(1-p) = (p/(1-p))^β+ for 0 < p <= (G-1)/G; the all-solved
        # group, where the reflected curve is infinite, continues its last segment linearly.
        flipped = asym_pos_curve(1 - p, opts.beta_pos)
        last, before = flipped[g - 1], flipped[g - 2]
        adv_pos = torch.cat([flipped[:g], (2 * last - before).reshape(1)])
    elif opts.flip == "neg":
        # EntIncrease (Eq. 16): Ã_neg(p) = A_neg(1-p) = -((1-p)/p)^β- for 1/G <= p < 1; the all-wrong group
        # continues the first segment linearly.
        flipped = asym_neg_curve(1 - p, opts.beta_neg)
        first, second = flipped[1], flipped[2]
        adv_neg = torch.cat([(2 * first - second).reshape(1), flipped[1:]])
    return adv_pos, adv_neg


register_estimator(
    "asym_grpo",
    "AsymGRPO: A_pos=((1-p)/p)^beta_pos, A_neg=-(p/(1-p))^beta_neg (Eq. 10), optional flip (App. D)",
    reads=("beta_pos", "beta_neg", "flip"),
    curves=_asym_curves,
)


@register_estimator("group_norm", "GRPO: (r-mean)/(std+eps), unbiased std (as OpenRLHF/verl/TRL)")
def _grpo_curves(group_size: int, opts: AdvantageOptions) -> tuple[torch.Tensor, torch.Tensor]:
    p = _counts(group_size)
    # Binary rewards: mean = p and the unbiased variance is p(1-p)·G/(G-1).
    std = torch.sqrt(p * (1 - p) * group_size / (group_size - 1))
    return (1 - p) / (std + GRPO_STD_EPS), -p / (std + GRPO_STD_EPS)


@register_estimator(
    "dr_grpo", "Dr.GRPO: r - mean (no std), with the sum/constant loss", loss_aggregation="seq_sum_constant"
)
def _dr_grpo_curves(group_size: int, opts: AdvantageOptions) -> tuple[torch.Tensor, torch.Tensor]:
    p = _counts(group_size)
    return 1 - p, -p


@register_estimator(
    "pass_at_k", "Pass@K training (Chen et al. 2025): analytic pass@k advantages", reads=("k",)
)
def _pass_at_k_curves(group_size: int, opts: AdvantageOptions) -> tuple[torch.Tensor, torch.Tensor]:
    g, k = group_size, opts.k
    adv_pos = torch.zeros(g + 1, dtype=torch.float64)
    adv_neg = torch.zeros(g + 1, dtype=torch.float64)
    for c in range(g + 1):
        n_wrong = g - c
        mean_pass = 1 - math.comb(n_wrong, k) / math.comb(g, k)  # R̄: chance that k draws hold a success
        sigma = math.sqrt(mean_pass * (1 - mean_pass))
        if sigma == 0:  # all-same group: every k-subset scores the same, nothing to learn
            continue
        adv_pos[c] = (1 - mean_pass) / sigma
        if n_wrong >= 1:
            # a wrong rollout only lowers the subsets made entirely of wrong rollouts that include it
            adv_neg[c] = (1 - mean_pass - math.comb(n_wrong - 1, k - 1) / math.comb(g - 1, k - 1)) / sigma
    return adv_pos, adv_neg


PRESETS: dict[str, dict] = {
    "reinforce_pm1": dict(beta_pos=0.0, beta_neg=0.0, flip="none"),
    "pos_only": dict(beta_pos=0.5, beta_neg=0.0, flip="none"),
    "neg_only": dict(beta_pos=0.0, beta_neg=0.5, flip="none"),
    "symmetric": dict(beta_pos=0.7, beta_neg=0.7, flip="none"),
    "main": dict(beta_pos=0.9, beta_neg=0.4, flip="none"),
    "main_clip_higher": dict(beta_pos=0.9, beta_neg=0.3, flip="none"),
    "ent_decrease": dict(beta_pos=0.5, beta_neg=0.5, flip="pos"),
    "ent_increase": dict(beta_pos=0.5, beta_neg=0.5, flip="neg"),
    # Zhu et al. 2025 (arXiv 2506.01347): REINFORCE's ±1 with the channels weighted.
    "w_reinforce": dict(beta_pos=0.0, beta_neg=0.0, flip="none", scale_pos=0.1, scale_neg=1.0),
    "psr": dict(beta_pos=0.0, beta_neg=0.0, flip="none", scale_pos=1.0, scale_neg=0.0),
    "nsr": dict(beta_pos=0.0, beta_neg=0.0, flip="none", scale_pos=0.0, scale_neg=1.0),
}
_PRESET_NOTES = {
    "reinforce_pm1": "REINFORCE, +1/-1 (Eq. 5)",
    "pos_only": "Pos-only modulation",
    "neg_only": "Neg-only modulation",
    "symmetric": "AsymGRPO with beta_pos = beta_neg",
    "main": "AsymGRPO, the paper's main setting",
    "main_clip_higher": "AsymGRPO for use with clip-higher (eps_high 0.28)",
    "ent_decrease": "EntDecrease: GRPO with the positive curve flipped",
    "ent_increase": "EntIncrease: GRPO with the negative curve flipped",
    "w_reinforce": "W-REINFORCE (Zhu et al. 2025): +lambda/-1, lambda = 0.1",
    "psr": "PSR (Zhu et al. 2025): positive samples only, +1/0",
    "nsr": "NSR (Zhu et al. 2025): negative samples only, 0/-1",
}
# The weighted REINFORCE family needs no group, like REINFORCE itself.
_NO_GROUP_PRESETS = {"reinforce_pm1", "w_reinforce", "psr", "nsr"}
for _name, _fixed in PRESETS.items():
    register_estimator(
        _name,
        f"{_PRESET_NOTES[_name]}: asym_grpo({_fixed['beta_pos']:g}, {_fixed['beta_neg']:g}"
        + (f", flip={_fixed['flip']}" if _fixed["flip"] != "none" else "")
        + "".join(f", {key}={_fixed[key]:g}" for key in ("scale_pos", "scale_neg") if key in _fixed)
        + ")",
        fixed=_fixed,
        # REINFORCE and its weighted family need no group; every other curve depends on the group accuracy.
        min_group_size=1 if _name in _NO_GROUP_PRESETS else 2,
        curves=_asym_curves,
    )


def advantage_curves(
    name: str, group_size: int, options: AdvantageOptions | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two curves of estimator ``name`` for a group of ``group_size``.

    Returns ``(adv_pos, adv_neg)``, each float64 of shape ``(G+1,)``, indexed by the number of correct
    rollouts c. ``adv_pos[0]`` and ``adv_neg[G]`` belong to no rollout and are 0.
    """
    estimator = get_estimator(name)
    if not isinstance(group_size, int) or group_size < estimator.min_group_size:
        raise ValueError(
            f"group_size must be an integer >= {estimator.min_group_size} for {name!r} "
            f"(a group-relative advantage needs several rollouts per prompt), got {group_size!r}"
        )
    opts = estimator.resolve(options)
    opts.validate(group_size if "k" in estimator.reads else None)
    adv_pos, adv_neg = estimator.curves(group_size, opts)
    # Channel weights apply to every estimator's curves alike (W-REINFORCE, PSR, NSR, or any weighting).
    adv_pos, adv_neg = adv_pos * opts.scale_pos, adv_neg * opts.scale_neg
    # Slots that belong to no rollout (no correct one at c = 0, no wrong one at c = G) are 0 by convention,
    # whatever a formula gives there; "+ 0.0" turns -0.0 into 0.0 for printing.
    adv_pos, adv_neg = adv_pos.clone() + 0.0, adv_neg.clone() + 0.0
    adv_pos[0], adv_neg[group_size] = 0.0, 0.0
    return adv_pos, adv_neg


def compute_advantages(
    name: str, correct: torch.Tensor, options: AdvantageOptions | None = None
) -> torch.Tensor:
    """Advantages of a batch of groups.

    Args:
        name: a registered estimator (``ESTIMATORS``).
        correct: ``(P, G)`` binary correctness (bool, int or float in {0, 1}) of G rollouts for P prompts.
        options: estimator options; presets override the ones they fix.

    Returns:
        ``(P, G)`` float32 advantages on ``correct``'s device; finite for every input.
    """
    if correct.dim() != 2:
        raise ValueError(f"correct must have shape (P, G), got {tuple(correct.shape)}")
    if correct.is_floating_point() and not torch.all((correct == 0) | (correct == 1)):
        raise ValueError(
            "correct must hold binary scores (0 or 1); pass the verifier's score, not a shaped reward"
        )
    adv_pos, adv_neg = advantage_curves(name, correct.shape[1], options)
    is_correct = correct.bool()
    num_correct = is_correct.sum(dim=1, keepdim=True).expand_as(is_correct).cpu()  # (P, G)
    values = torch.where(is_correct.cpu(), adv_pos[num_correct], adv_neg[num_correct])
    return values.to(device=correct.device, dtype=torch.float32)
