"""``AsymPolicyLoss`` and the policy actor that installs it: Entropy Advantage and Dr.GRPO's aggregation.

OpenRLHF's ``PolicyLoss`` only sees log-probs and advantages, and only knows token-mean and per-sequence-mean
aggregation. Two Table 1 rows need more (SPEC §3):
  * Entropy Advantage (Cheng et al. 2025) shapes A per token with the policy's entropy. The actor computes the
    entropy in the same forward as the log-probs when ``--actor.entropy_coef`` is set (the launcher sets 0:
    computed, not a bonus); a forward hook on the actor hands it to the loss before the loss is called.
  * Dr.GRPO sums each sequence's token losses and divides by a constant (``--rollout.max_new_tokens``).
Everything else (ratio clipping, IS correction, token-mean aggregation) stays upstream's.
"""

from __future__ import annotations

from asym_openrlhf.algorithms.losses import (
    aggregate_loss,
    clipped_surrogate_loss,
    entropy_shaped_advantages,
    masked_mean,
)
from asym_openrlhf.integration.upstream import PolicyLoss, PolicyModelActor


class AsymPolicyLoss(PolicyLoss):
    """Upstream's ``PolicyLoss`` plus Entropy Advantage and Dr.GRPO's ``seq_sum_constant`` aggregation.

    Same ``forward`` signature and 5-tuple ``(loss, clip_ratio, ppo_kl, vllm_kl, is_filter_ratio)``.
    """

    def __init__(
        self,
        *,
        aggregation: str = "token_mean",
        max_response_len: int | None = None,
        entropy_alpha: float | None = None,
        entropy_kappa: float = 2.0,
        **upstream_kwargs,
    ):
        super().__init__(**upstream_kwargs)
        self.aggregation = aggregation
        self.max_response_len = max_response_len
        self.entropy_alpha = entropy_alpha
        self.entropy_kappa = entropy_kappa
        self.token_entropy = None  # (B, T-1) entropies of the current micro-batch, set by the actor's hook

    def forward(
        self,
        log_probs,
        old_log_probs,
        advantages,
        action_mask=None,
        rollout_log_probs=None,
        dp_size=1,
        batch_num_tokens=None,
        global_batch_size=None,
    ):
        if self.entropy_alpha is not None:
            entropy, self.token_entropy = self.token_entropy, None  # use once: never a stale micro-batch's
            if entropy is None:
                raise RuntimeError("Entropy Advantage needs the actor's token entropy; it was not computed")
            response_entropy = entropy[:, -advantages.shape[1] :].to(advantages.dtype)  # (B, A)
            advantages = entropy_shaped_advantages(
                advantages, response_entropy, self.entropy_alpha, self.entropy_kappa
            )
        if self.aggregation == "token_mean":
            return super().forward(
                log_probs,
                old_log_probs,
                advantages,
                action_mask=action_mask,
                rollout_log_probs=rollout_log_probs,
                dp_size=dp_size,
                batch_num_tokens=batch_num_tokens,
                global_batch_size=global_batch_size,
            )
        # As upstream, bound the log-ratio at ±20 so that exp() cannot overflow into an inf loss.
        log_ratio = (log_probs - old_log_probs).clamp(-20.0, 20.0)
        token_loss, clipped = clipped_surrogate_loss(
            old_log_probs + log_ratio, old_log_probs, advantages, self.clip_eps_low, self.clip_eps_high
        )
        loss = aggregate_loss(token_loss, action_mask, "seq_sum_constant", self.max_response_len)
        if global_batch_size is not None:
            # aggregate_loss averages over this micro-batch's sequences. Upstream's sample mode divides by the
            # step's global sequence count (÷ gradient-accumulation steps) and multiplies by the DP size, so
            # that micro-batches and ranks add up to one mean over the optimizer step; do the same.
            loss = loss * action_mask.shape[0] / global_batch_size * dp_size
        clip_ratio = masked_mean(clipped.float(), action_mask)
        ppo_kl = masked_mean(-(log_probs - old_log_probs).detach(), action_mask)
        return loss, clip_ratio, ppo_kl, None, None


def build_policy_loss(args) -> AsymPolicyLoss:
    """Our loss with exactly the upstream settings ``ActorPPOTrainer.__init__`` passes to ``PolicyLoss``."""
    return AsymPolicyLoss(
        aggregation=args.asym.loss_aggregation,
        max_response_len=args.rollout.max_new_tokens,
        entropy_alpha=args.asym.entropy_adv_alpha,
        entropy_kappa=args.asym.entropy_adv_kappa,
        clip_eps_low=args.actor.eps_clip_low_high[0],
        clip_eps_high=args.actor.eps_clip_low_high[1],
        dual_clip=args.actor.dual_clip,
        token_level_loss=args.actor.loss_agg_mode == "token-mean",
        policy_loss_type=args.actor.policy_loss_type,
        is_correction_level=args.algo.advantage.is_correction_level,
        is_correction_mode=args.algo.advantage.is_correction_mode,
        is_correction_gating=args.algo.advantage.is_correction_gating,
        is_correction_threshold=args.algo.advantage.is_correction_threshold,
    )


def needs_policy_loss(args) -> bool:
    return args.asym.entropy_adv_alpha is not None or args.asym.loss_aggregation != "token_mean"


def install_policy_loss(ppo_trainer, args) -> AsymPolicyLoss:
    """Replace ``ppo_trainer.actor_loss_fn`` (an ``ActorPPOTrainer``) with ours; hook entropy into it."""
    loss_fn = build_policy_loss(args)
    ppo_trainer.actor_loss_fn = loss_fn
    if loss_fn.entropy_alpha is not None:

        def hand_entropy_to_loss(module, inputs, output):
            # Training forwards return (log_probs, output) with output.entropy; experience-making ones a tensor.
            if isinstance(output, tuple) and getattr(output[1], "entropy", None) is not None:
                loss_fn.token_entropy = output[1].entropy.detach()

        ppo_trainer.actor.register_forward_hook(hand_entropy_to_loss)
    return loss_fn


class AsymPolicyModelActor(PolicyModelActor):
    """Upstream's policy actor; after its model and trainer are built, installs ``AsymPolicyLoss`` if needed."""

    def init_model_from_pretrained(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        super().init_model_from_pretrained(strategy, pretrain, max_steps, vllm_engines)
        if needs_policy_loss(strategy.args):
            install_policy_loss(self.trainer, strategy.args)
