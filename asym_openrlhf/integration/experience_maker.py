"""``AsymExperienceMaker``: OpenRLHF's experience maker with this project's estimators.

Where it departs from upstream's ``compute_advantages_and_returns`` for our estimators (upstream names keep
upstream's code path untouched):
  * p comes from the binary ``scores`` the reward function returns, never from the shaped ``rewards``;
  * samples are regrouped by ``experience.index``, since dynamic batching hands us non-contiguous indices;
  * the rollout advantage goes on every response token as is: no KL in the reward, no reward clipping, no
    batch whitening (the launcher refuses the settings that would otherwise be silently ignored).
"""

from __future__ import annotations

import itertools
from dataclasses import fields
from types import SimpleNamespace

import torch

from asym_openrlhf.algorithms.advantages import AdvantageOptions, compute_advantages
from asym_openrlhf.algorithms.control import options_at_step
from asym_openrlhf.integration.upstream import RemoteExperienceMaker


def advantage_options(settings: SimpleNamespace) -> AdvantageOptions:
    """The estimator options the launcher resolved and attached to ``args.asym`` (flat, one per field)."""
    return AdvantageOptions(**{f.name: getattr(settings, f.name) for f in fields(AdvantageOptions)})


def regroup(experiences, values_of, group_size: int) -> tuple[torch.Tensor, list[int], list[int]]:
    """Gather one scalar per sample into prompt groups.

    ``values_of(experience)`` gives a ``(B,)`` tensor per experience. Returns ``(grouped, indices, lengths)``:
    ``grouped`` is ``(P, G)`` in prompt order; ``grouped.reshape(-1)[indices].split(lengths)`` undoes it.
    """
    lengths = [len(experience.index) for experience in experiences]
    indices = list(itertools.chain.from_iterable(experience.index for experience in experiences))
    values = torch.cat([values_of(experience).reshape(-1).float().cpu() for experience in experiences])
    grouped = torch.empty_like(values)
    grouped[torch.tensor(indices)] = values
    if grouped.numel() % group_size:
        raise ValueError(f"{grouped.numel()} samples do not split into groups of {group_size}")
    return grouped.reshape(-1, group_size), indices, lengths


def binary_scores(experience) -> torch.Tensor:
    """``(B,)`` correctness of an experience's samples: the reward function's ``scores``."""
    if experience.scores is None:
        raise ValueError(
            "the reward function returned no 'scores'; AsymGRPO-family estimators need the binary "
            "correctness as 'scores' (see asym_openrlhf/reward/math_reward.py)"
        )
    return experience.scores


def check_rewards(rollout_samples, has_reward_model: bool) -> None:
    """Stop the step, naming the cause, when the reward function gave some samples no reward.

    Upstream's agent executor logs a reward function's exception and leaves that sample's ``rewards`` None;
    the batch then fails deep inside upstream, or asks for a reward model (none: everything came from the
    function). Our reward raises only when its grader is broken (``math_reward.MAX_CONSECUTIVE_FAILURES``).
    """
    missing = sum(sample.rewards is None for sample in rollout_samples)
    if missing and (missing < len(rollout_samples) or not has_reward_model):
        raise RuntimeError(
            f"{missing} of {len(rollout_samples)} rollouts have no reward: the reward function raised for them "
            "(its error is in the vLLM engine logs: '[SingleTurnExecutor] Failed to fetch reward')"
        )


class AsymExperienceMaker(RemoteExperienceMaker):
    """Upstream's experience maker; ``compute_advantages_and_returns`` runs our registry for our names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.latest_experiences = []  # the last batch, for the trainer's post-update metrics
        # Where a β schedule is: the trainer sets the step before each batch and the run's total once.
        self.step, self.total_steps = 0, 1
        self.latest_options = None  # the options the last batch's advantages used (β at that step)
        self.beta_controller = (
            None  # the trainer's entropy controller (--asym.target_entropy), when there is one
        )

    def make_experience_batch(self, rollout_samples):
        check_rewards(rollout_samples, self.reward_model_group is not None)
        self.latest_experiences = super().make_experience_batch(rollout_samples)
        return self.latest_experiences

    @torch.no_grad()
    def compute_advantages_and_returns(self, experiences):
        settings = self.args.asym
        if settings.estimator is None:  # an OpenRLHF estimator: upstream's code, untouched
            return super().compute_advantages_and_returns(experiences)

        group_size = self.args.rollout.n_samples_per_prompt
        correct, indices, lengths = regroup(experiences, binary_scores, group_size)  # (P, G)
        options = options_at_step(
            advantage_options(settings), self.step, self.total_steps, self.beta_controller
        )
        self.latest_options = options
        advantages = compute_advantages(settings.estimator, correct, self.latest_options)
        if not torch.isfinite(advantages).all():
            # A NaN advantage would reach the loss and the optimizer and turn every weight NaN without a word.
            bad = (~torch.isfinite(advantages)).any(dim=1).nonzero().flatten()
            raise ValueError(
                f"advantages are not finite at step {self.step + 1}: {settings.estimator} (beta+ "
                f"{options.beta_pos:g}, beta- {options.beta_neg:g}) gave {advantages[bad[0]].tolist()} for a group "
                f"with correct = {correct[bad[0]].int().tolist()} "
                f"({len(bad)} of {len(correct)} groups)"
            )
        per_sample = advantages.reshape(-1)[torch.tensor(indices)].split(lengths)
        for experience, advantage in zip(experiences, per_sample):
            mask = experience.action_mask.to(torch.float32)  # (B, A)
            experience.advantages = advantage.unsqueeze(-1) * mask  # outcome advantage on every token
            experience.returns = experience.advantages.clone()
            experience.info["return"] = advantage
            experience.kl = None  # as upstream: the actor never reads it and it is (B, A) of zeros here
        return experiences
