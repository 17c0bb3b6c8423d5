"""``AsymPPOTrainer``: OpenRLHF's PPO trainer with our experience maker and the paper's metrics (SPEC §4).

The experience maker lives inside the trainer's Ray actor, so it is swapped in the trainer's constructor (a
driver-side patch would not reach it). Metrics go into the status dict upstream logs each step, under the
names of ``asym_openrlhf.algorithms.metrics.METRICS`` (shown as ``train/<name>`` by tensorboard / wandb).
"""

from __future__ import annotations

import ray

from asym_openrlhf.algorithms.losses import masked_mean
from asym_openrlhf.algorithms.metrics import (
    covariance_by_accuracy,
    group_accuracy_histogram,
    group_logp_adv_covariance,
    positive_logprob_gain,
    solved_fractions,
)
from asym_openrlhf.integration.experience_maker import AsymExperienceMaker, regroup
from asym_openrlhf.integration.policy_loss import AsymPolicyModelActor
from asym_openrlhf.integration.upstream import (
    POLICY_ACTOR_OPTIONS,
    PPO_TRAINER_OPTIONS,
    PPOTrainer,
)


def rollout_metrics(experiences, group_size: int) -> dict[str, float]:
    """Group-level metrics of one rollout batch (before the update).

    Needs the binary ``scores``; returns ``{}`` when the reward function gave none (an upstream reward model).
    """
    if group_size < 2 or any(experience.scores is None for experience in experiences):
        return {}
    correct = regroup(experiences, lambda e: e.scores, group_size)[0].bool()  # (P, G)
    metrics = {"rollout/accuracy": correct.float().mean().item(), **solved_fractions(correct)}
    for count, fraction in enumerate(group_accuracy_histogram(correct).tolist()):
        metrics[f"rollout/acc_hist/c{count}"] = fraction

    # Appendix B: length-normalized log-prob of each rollout against its (rollout-level) advantage.
    def mean_logp(e):
        return masked_mean(e.action_log_probs.float(), e.action_mask, dim=-1)

    def rollout_advantage(e):
        return masked_mean(e.advantages.float(), e.action_mask, dim=-1)

    if all(e.action_log_probs is not None and e.advantages is not None for e in experiences):
        logp = regroup(experiences, mean_logp, group_size)[0]
        advantages = regroup(experiences, rollout_advantage, group_size)[0]
        covariance = group_logp_adv_covariance(logp, advantages)  # (P,)
        metrics["actor/logp_adv_cov"] = covariance.mean().item()
        for count, value in covariance_by_accuracy(covariance, correct).items():
            metrics[f"actor/logp_adv_cov/c{count}"] = value
    return metrics


class AsymPPOTrainer(PPOTrainer):
    """Upstream ``PPOTrainer`` (the plain class under its ``@ray.remote``) with ``AsymExperienceMaker``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # BasePPOTrainer.__init__ built a RemoteExperienceMaker; rebuild it as ours from the same parts.
        self.experience_maker = AsymExperienceMaker(
            self.actor_model_group,
            self.critic_model_group,
            self.reward_model_group,
            self.reference_model_group,
            self.kl_ctl,
            self.strategy,
            self.tokenizer,
        )

    def _compute_rollout_stats(self, experiences):
        stats = super()._compute_rollout_stats(experiences)
        stats.update(rollout_metrics(experiences, self.args.rollout.n_samples_per_prompt))
        return stats

    def ppo_train(self, global_steps):
        status = super().ppo_train(global_steps)
        if "entropy_loss" in status:  # token-mean entropy of the policy, computed with the loss
            status["actor/entropy"] = status["entropy_loss"]
        if self.args.asym.log_pos_logprob_gain and "policy_loss" in status:
            gain = self.positive_logprob_gain(self.experience_maker.latest_experiences)
            if gain is not None:
                status["actor/pos_logprob_gain"] = gain
        return status

    def positive_logprob_gain(self, experiences) -> float | None:
        """E[log π_new(y) - log π_old(y)] over correct rollouts: one more actor forward over the batch."""
        if not experiences or any(e.scores is None for e in experiences):
            return None
        maker = self.experience_maker
        duplicate_factor = self.args.ds.ring_attn_size * self.args.ds.tensor_parallel_size
        refs = maker._dispatch_forward(
            self.actor_model_group,
            self.args.train.colocate_all or self.args.train.colocate_actor_ref,
            sequences=[e.sequences for e in experiences],
            action_mask=[e.action_mask for e in experiences],
            attention_mask=[e.attention_mask for e in experiences],
        )
        new_log_probs = maker._flatten_results(refs, duplicate_factor)
        total, count = 0.0, 0
        for experience, new in zip(experiences, new_log_probs):
            gain = positive_logprob_gain(
                new, experience.action_log_probs, experience.action_mask, experience.scores
            )
            if gain is not None:  # a mean over this micro-batch's correct rollouts: weight it by their number
                num_correct = int(experience.scores.bool().sum())
                total, count = total + gain * num_correct, count + num_correct
        return total / count if count else None


def _as_ray_actor(cls, options: dict):
    """``cls`` as a Ray actor class with the resource options upstream's decorator used."""
    return ray.remote(**options)(cls) if options else ray.remote(cls)


# The Ray actor classes the launcher hands to upstream's train().
AsymPPOTrainerRayActor = _as_ray_actor(AsymPPOTrainer, PPO_TRAINER_OPTIONS)
AsymPolicyModelRayActor = _as_ray_actor(AsymPolicyModelActor, POLICY_ACTOR_OPTIONS)
