"""The paper's §3 claims as data (``CLAIMS``: methods, statistic, relation), and their verdicts over seeds."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# One atomic write for a run's files and the study's.
from asym_openrlhf.lite.run_statistics import STATISTICS
from asym_openrlhf.lite.stats import (
    EQUIVALENCE_MARGIN,
    claim_p_value,
    difference_interval,
    finite,
    holm,
    mean_interval,
    seeds_for_half_width,
    verdict,
)

ONE_ANSWER_TASKS = {"addition"}  # tasks with one correct answer per prompt


# --- the paper's claims ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """``a`` ``relation`` ``b`` on one statistic of ``STATISTICS``, judged by the interval of a - b.

    ``b`` None compares ``a`` with 0. ``many_answers``: judged only on tasks with many correct responses per
    prompt (not on ``ONE_ANSWER_TASKS``).
    """

    text: str
    a: str
    relation: str  # ">" or "<": the claimed sign of a - b; "=": |a - b| < EQUIVALENCE_MARGIN
    b: str | None
    statistic: str
    many_answers: bool = False


# Baselines: REINFORCE for the §3.1 decomposition, GRPO for the §3.2 flips. Entropy on correct rollouts is
# "kept" when its second-half level is above the baseline's: a seed's step-1 rollouts are the same for every
# method, so a higher late level is also a smaller drop from the common start.
CLAIMS = [
    # §3.1, entropy: overall, then split by the rollouts' correctness
    Claim("Pos-only keeps entropy higher than REINFORCE", "Pos-only", ">", "REINFORCE", "entropy_late"),
    Claim("Neg-only drives entropy lower than REINFORCE", "Neg-only", "<", "REINFORCE", "entropy_late"),
    Claim(
        "Pos-only keeps the entropy of correct rollouts (informative) above REINFORCE's",
        "Pos-only", ">", "REINFORCE", "entropy_pos_late",
    ),
    Claim(
        "GRPO keeps the entropy of correct rollouts above REINFORCE's",
        "GRPO", ">", "REINFORCE", "entropy_pos_late",
    ),
    Claim(
        "Neg-only prunes the entropy of wrong rollouts (spurious) below REINFORCE's",
        "Neg-only", "<", "REINFORCE", "entropy_neg_late",
    ),
    Claim(
        "GRPO prunes the entropy of wrong rollouts below REINFORCE's",
        "GRPO", "<", "REINFORCE", "entropy_neg_late",
    ),
    # §3.1, accuracy and mechanism
    Claim(
        "Pos-only (sustaining informative entropy) beats REINFORCE in accuracy",
        "Pos-only", ">", "REINFORCE", "val_acc_ema",
    ),
    Claim(
        "Neg-only (pruning spurious entropy) beats REINFORCE in accuracy",
        "Neg-only", ">", "REINFORCE", "val_acc_ema",
    ),
    Claim(
        "Pos-only lowers the none-solved fraction vs REINFORCE",
        "Pos-only", "<", "REINFORCE", "none_solved",
    ),
    Claim(
        "Neg-only raises the positive log-prob gain vs REINFORCE",
        "Neg-only", ">", "REINFORCE", "pos_logprob_gain",
    ),
    Claim(
        "Entropy regularization raises entropy vs REINFORCE",
        "REINFORCE+EntReg", ">", "REINFORCE", "entropy_late",
    ),
    Claim("...but does not reach Pos-only's accuracy", "REINFORCE+EntReg", "<", "Pos-only", "val_acc_ema"),
    # §3.2, the flips against GRPO
    Claim("EntDecrease lowers entropy vs GRPO", "EntDecrease", "<", "GRPO", "entropy_late"),
    Claim("EntIncrease raises entropy vs GRPO", "EntIncrease", ">", "GRPO", "entropy_late"),
    Claim(
        "EntDecrease lowers the entropy of correct rollouts below GRPO's",
        "EntDecrease", "<", "GRPO", "entropy_pos_late",
    ),
    Claim(
        "EntIncrease raises the entropy of wrong rollouts above GRPO's",
        "EntIncrease", ">", "GRPO", "entropy_neg_late",
    ),
    Claim(
        "EntDecrease (suppressing informative entropy) is less accurate than GRPO",
        "EntDecrease", "<", "GRPO", "val_acc_ema",
    ),
    Claim(
        "EntIncrease (amplifying spurious entropy) is less accurate than GRPO",
        "EntIncrease", "<", "GRPO", "val_acc_ema",
    ),
    Claim("AsymGRPO (0.9, 0.4) is more accurate than GRPO (Table 1)", "AsymGRPO", ">", "GRPO", "val_acc_ema"),
    # Distinct correct solutions and pass@G follow informative entropy: the same three pairs as entropy_pos.
    Claim(
        "Pos-only finds more distinct correct solutions than REINFORCE",
        "Pos-only", ">", "REINFORCE", "unique_correct_late", many_answers=True,
    ),
    Claim(
        "GRPO finds more distinct correct solutions than REINFORCE",
        "GRPO", ">", "REINFORCE", "unique_correct_late", many_answers=True,
    ),
    Claim(
        "EntDecrease finds fewer distinct correct solutions than GRPO",
        "EntDecrease", "<", "GRPO", "unique_correct_late", many_answers=True,
    ),
    Claim("Pos-only raises held-out pass@G vs REINFORCE", "Pos-only", ">", "REINFORCE", "pass_at_G_ema"),
    Claim("GRPO raises held-out pass@G vs REINFORCE", "GRPO", ">", "REINFORCE", "pass_at_G_ema"),
    Claim("EntDecrease lowers held-out pass@G vs GRPO", "EntDecrease", "<", "GRPO", "pass_at_G_ema"),
    # Fig. 1(c)
    Claim("Cov(p) rises with group accuracy p under GRPO (Fig. 1c)", "GRPO", ">", None, "cov_spearman"),
    # Exploration where it shows: pass@k at the largest k, from n samples at the start and the end.
    Claim(
        "AsymGRPO keeps more exploration than GRPO: higher pass@n at the end (k = n)",
        "AsymGRPO", ">", "GRPO", "pass_at_n_end",
    ),
    Claim("...while matching GRPO's pass@1 at the end (|a − b| < 0.015)", "AsymGRPO", "=", "GRPO", "pass_at_1_end"),
    Claim("RL lowers pass@n below the warm start: REINFORCE", "REINFORCE", "<", None, "pass_at_n_change"),
    Claim("RL lowers pass@n below the warm start: GRPO", "GRPO", "<", None, "pass_at_n_change"),
    Claim("RL lowers pass@n below the warm start: AsymGRPO", "AsymGRPO", "<", None, "pass_at_n_change"),
]  # fmt: skip


def _by_seed(values) -> dict[int, float]:
    """``{seed: value}``; a plain list is seeds 0..n-1."""
    return dict(values) if isinstance(values, dict) else dict(enumerate(values))


def check_claims(
    per_seed: dict[str, dict], task: str = "addition", target_half_width: float = EQUIVALENCE_MARGIN
) -> list[dict]:
    """Judge every claim whose methods ran (and that applies to ``task``), from per-seed values
    ``per_seed[method][statistic]`` (``{seed: value}``, or a list for seeds 0..n-1).

    Each verdict also comes after a Holm correction across the claims judged here (``verdict_holm``: the
    uncorrected verdict where its p-value survives, else "undecided"), with the sd of the paired differences
    and the seeds that sd says a 95% interval of half-width ``target_half_width`` needs."""
    verdicts = []
    for claim in CLAIMS:
        if claim.a not in per_seed or (claim.b is not None and claim.b not in per_seed):
            continue
        if claim.many_answers and task in ONE_ANSWER_TASKS:
            continue
        a = _by_seed(per_seed[claim.a][claim.statistic])
        b = {seed: 0.0 for seed in a} if claim.b is None else _by_seed(per_seed[claim.b][claim.statistic])
        difference = difference_interval(a, b)
        differences = [a[s] - b[s] for s in a if s in b and finite(a[s]) and finite(b[s])]
        sd = statistics.stdev(differences) if difference.paired and len(differences) > 1 else math.nan
        verdicts.append(
            dict(
                claim=claim.text,
                verdict=verdict(difference, claim.relation),
                p_value=claim_p_value(difference, claim.relation),
                sd_paired=sd,
                seeds_for_target=seeds_for_half_width(sd, target_half_width),
                a=claim.a,
                relation=claim.relation,
                b=claim.b,
                statistic=claim.statistic,
                definition=STATISTICS[claim.statistic][1],
                mean_a=mean_interval(a.values()).mean,
                mean_b=mean_interval(b.values()).mean,
                difference=difference.to_json(),
            )
        )
    survives = holm([v["p_value"] for v in verdicts])
    for v, kept in zip(verdicts, survives):
        v["verdict_holm"] = v["verdict"] if kept else "undecided"
    return verdicts


def claims_not_judged(labels, task: str) -> list[str]:
    """The claims whose methods ran but which ``task`` cannot test (one correct response per prompt)."""
    return [
        c.text
        for c in CLAIMS
        if c.many_answers and task in ONE_ANSWER_TASKS and c.a in labels and (c.b is None or c.b in labels)
    ]
