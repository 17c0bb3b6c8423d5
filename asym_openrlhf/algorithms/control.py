"""Entropy-targeted β: a controller that moves AsymGRPO's β+ and/or β− each step to hold the policy's entropy
near a target (beyond the paper, whose Limitations name fixed, hand-tuned β as a weakness).

The rule, from the paper's mechanism (§3, Fig. 2): a larger β+ gives rare successes on hard prompts more weight
and keeps entropy up (Pos-only stays above REINFORCE), a larger β− punishes confident mistakes on easy prompts
harder and prunes entropy (Neg-only falls below it). So with the error e = target − H_t (positive when the
entropy is too low), one step of

    β+ ← clip(β+ + rate · e, 0, 4)        (adapt "pos" or "both")
    β− ← clip(β− − rate · e, 0, 4)        (adapt "neg" or "both")

raises entropy when it is below target and lowers it when above. It is SAC's temperature rule
(α ← α − lr · (H − target)) and TRL's adaptive entropy coefficient, acting through the asymmetric curves
instead of an entropy bonus. The default moves β+ only: it acts on informative entropy (correct rollouts) and
leaves the pruning of wrong rollouts as the user set it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from asym_eval.options import in_range, one_of, option, optional, validate

from asym_openrlhf.algorithms.advantages import MAX_BETA, AdvantageOptions, options_at

ADAPT = ("pos", "neg", "both")


@dataclass
class BetaController:
    """β+ / β− that follow ``actor/entropy`` to ``target`` at ``rate`` (β units per nat of entropy error)."""

    target: float | None = option(
        None,
        "--asym.target_entropy",
        "entropy-targeted β (beyond the paper): after each step, move β toward holding actor/entropy at H nats "
        "per token: β+ += rate·(H − entropy) and/or β− −= rate·(H − entropy), within [0, 4]. asym_grpo only; "
        "the start values are --asym.beta_pos / --asym.beta_neg. Unset: off.",
        check=optional(in_range(0, low_open=True)),
        metavar="H",
        type=float,
        show_default=False,
    )
    rate: float = option(
        1.0,
        "--asym.adapt_rate",
        "with --asym.target_entropy: β change per nat of entropy error per step (> 0).",
        check=in_range(0, low_open=True),
        metavar="RATE",
    )
    adapt: str = option(
        "pos",
        "--asym.adapt",
        "with --asym.target_entropy: which β the controller moves. pos: β+ up keeps the informative entropy of "
        "rare successes; neg: β− down stops pruning wrong rollouts so hard; both.",
        check=one_of(ADAPT),
        metavar="{" + ",".join(ADAPT) + "}",
    )
    beta_pos: float = 0.9  # where the controller has moved β+ / β− (starts at the run's)
    beta_neg: float = 0.4

    def validate(self) -> None:
        """Raise ``ValueError`` naming the option that is out of range."""
        validate(self)
        if self.target is None:
            raise ValueError("target must be set (nats per token)")

    def update(self, entropy: float) -> None:
        """One step of the rule above, from the step's token-mean entropy."""
        if entropy is None or not math.isfinite(entropy):
            return  # no measurement this step: keep β
        error = self.target - entropy
        if self.adapt in ("pos", "both"):
            self.beta_pos = min(max(self.beta_pos + self.rate * error, 0.0), MAX_BETA)
        if self.adapt in ("neg", "both"):
            self.beta_neg = min(max(self.beta_neg - self.rate * error, 0.0), MAX_BETA)

    def state(self) -> dict:
        """What a resumed run needs to continue with the β it had."""
        return {"beta_pos": self.beta_pos, "beta_neg": self.beta_neg}

    def load_state(self, state: dict) -> None:
        self.beta_pos, self.beta_neg = float(state["beta_pos"]), float(state["beta_neg"])


def options_at_step(
    options: AdvantageOptions, step: int, total_steps: int, controller: BetaController | None = None
) -> AdvantageOptions:
    """The estimator options of training step ``step`` (0-based) of ``total_steps``: β+ / β− where the schedule
    has moved them, or, with an entropy controller, where the controller has (the two exclude each other).
    Both trainers call this, so a step's β is decided in one place.

    >>> options_at_step(AdvantageOptions(beta_schedule="linear", beta_pos_end=0.5), 2, 3).beta_pos
    0.5
    >>> options_at_step(AdvantageOptions(), 0, 3, BetaController(1.0, 1.0, "pos", 1.2, 0.4)).beta_pos
    1.2
    """
    if controller is not None:
        return replace(options, beta_pos=controller.beta_pos, beta_neg=controller.beta_neg)
    return options_at(options, step, total_steps)
