"""``AsymPolicyLoss``, the policy's token entropy, and the policy actor that installs them.

OpenRLHF's ``PolicyLoss`` only sees log-probs and advantages, and only knows token-mean and per-sequence-mean
aggregation. Two Table 1 rows need more (SPEC §3):
  * Entropy Advantage (Cheng et al. 2025) shapes A per token with the policy's entropy;
  * Dr.GRPO sums each sequence's token losses and divides by a constant (``--rollout.max_new_tokens``).
Everything else (ratio clipping, IS correction, token-mean aggregation) stays upstream's.

The per-token entropy comes from a forward hook on the actor (``install_token_entropy``): it reads each
training forward's temperature-scaled logits without grad, hands the entropy to Entropy Advantage before the
loss runs, and adds the exact token mean to the step's metrics as ``actor/entropy`` (paper Eq. 3). Upstream's
own ``entropy_loss`` is loss-normalised (each micro-batch's sum / the step's mean tokens per micro-batch), and
computing it (``--actor.entropy_coef`` set) keeps a (tokens x vocabulary) tensor alive through backward.
"""

from __future__ import annotations

import inspect

import torch

from asym_openrlhf.algorithms.losses import (
    TokenControl,
    aggregate_loss,
    controlled_token_loss,
    cov_generator,
    entropy_shaped_advantages,
    masked_mean,
)
from asym_openrlhf.algorithms.metrics import entropy_by_correctness, mean_token_entropy, token_entropy_no_grad
from asym_openrlhf.integration.upstream import (
    PolicyLoss,
    PolicyModelActor,
    gather_and_pad_tensor,
    unpad_and_slice_tensor,
    upstream_aggregate_loss,
)


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
        token_control: TokenControl | None = None,
        seed: int = 42,
        **upstream_kwargs,
    ):
        super().__init__(**upstream_kwargs)
        self.aggregation = aggregation
        self.max_response_len = max_response_len
        self.entropy_alpha = entropy_alpha
        self.entropy_kappa = entropy_kappa
        self.token_control = token_control or TokenControl()
        # (B, T-1) entropies of the current micro-batch, set by install_token_entropy's hook.
        self.token_entropy = None
        # Clip-Cov / KL-Cov draw from cov_generator(seed, step, micro-batch): the policy actor sets the step
        # (begin_step) before each update; forward counts the micro-batches. cov_frac: the last micro-batch's
        # fraction of response tokens they acted on, for actor/cov_frac.
        self.seed, self.step, self.micro_batch = seed, 0, 0
        self.cov_frac = None

    def begin_step(self, global_step: int) -> None:
        self.step, self.micro_batch = global_step, 0

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
        entropy, self.token_entropy = self.token_entropy, None  # use once: never a stale micro-batch's
        if self.needs_entropy and entropy is None:
            raise RuntimeError("this loss needs the actor's token entropy; it was not computed")
        response_entropy = (
            None if entropy is None else entropy[:, -advantages.shape[1] :].to(advantages.dtype)
        )
        if self.entropy_alpha is not None:
            advantages = entropy_shaped_advantages(
                advantages, response_entropy, self.entropy_alpha, self.entropy_kappa
            )
        if self.aggregation == "token_mean" and not self.token_control.active:
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
        generator = cov_generator(self.seed, self.step, self.micro_batch)
        self.micro_batch += 1  # one forward per micro-batch (ActorPPOTrainer.training_step)
        token_loss, clipped, cov = controlled_token_loss(
            old_log_probs + log_ratio,
            old_log_probs,
            advantages,
            action_mask,
            self.clip_eps_low,
            self.clip_eps_high,
            self.token_control,
            response_entropy,
            generator,
        )
        if self.aggregation == "token_mean":
            # Upstream's own reduction, with upstream's global token count: micro-batches and ranks add up to
            # one token mean over the optimizer step, exactly as its PolicyLoss does.
            loss = upstream_aggregate_loss(
                token_loss, action_mask, dp_size=dp_size, batch_num_tokens=batch_num_tokens
            )
        else:
            loss = aggregate_loss(token_loss, action_mask, "seq_sum_constant", self.max_response_len)
            if global_batch_size is not None:
                # aggregate_loss averages over this micro-batch's sequences. Upstream's sample mode divides by
                # the step's global sequence count (÷ gradient-accumulation steps) and multiplies by the DP
                # size, so that micro-batches and ranks add up to one mean over the optimizer step; do the same.
                loss = loss * action_mask.shape[0] / global_batch_size * dp_size
        clip_ratio = masked_mean(clipped.float(), action_mask)  # upstream logs it as ppo_clip_ratio
        if self.token_control.cov_mode is not None:
            self.cov_frac = masked_mean(cov.float(), action_mask).detach()
        ppo_kl = masked_mean(-(log_probs - old_log_probs).detach(), action_mask)
        return loss, clip_ratio, ppo_kl, None, None

    @property
    def needs_entropy(self) -> bool:
        return self.entropy_alpha is not None or self.token_control.top_entropy_rho is not None


def build_policy_loss(args) -> AsymPolicyLoss:
    """Our loss with exactly the upstream settings ``ActorPPOTrainer.__init__`` passes to ``PolicyLoss``."""
    return AsymPolicyLoss(
        aggregation=args.asym.loss_aggregation,
        max_response_len=args.rollout.max_new_tokens,
        entropy_alpha=args.asym.entropy_adv_alpha,
        entropy_kappa=args.asym.entropy_adv_kappa,
        token_control=TokenControl(**(args.asym.token_control or {})),
        seed=args.train.seed,
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
    return (
        args.asym.entropy_adv_alpha is not None
        or args.asym.loss_aggregation != "token_mean"
        or bool(getattr(args.asym, "token_control", None))
    )


def install_policy_loss(ppo_trainer, args) -> AsymPolicyLoss:
    """Replace ``ppo_trainer.actor_loss_fn`` (an ``ActorPPOTrainer``) with ours (its entropy: see below)."""
    loss_fn = build_policy_loss(args)
    ppo_trainer.actor_loss_fn = loss_fn
    return loss_fn


def training_forward_entropy(actor, args: tuple, kwargs: dict, output) -> torch.Tensor:
    """``(B, T-1)`` per-token entropy of one training forward of ``actor`` (an ``openrlhf.models.Actor``).

    Laid out exactly as upstream's ``return_entropy`` path lays out ``output.entropy`` (position t scores the
    prediction of token t+1; the last A columns are the response). Where upstream computed it
    (``--actor.entropy_coef`` set), it is reused, detached. Otherwise it comes from ``output["logits"]``, which
    ``Actor.forward`` has already divided by the rollout temperature, without grad: the (tokens x vocabulary)
    softmax is never saved for backward.
    """
    if getattr(output, "entropy", None) is not None:
        return output.entropy.detach()
    entropy = token_entropy_no_grad(output["logits"])  # (B, T); packed: (1, this rank's tokens)
    if actor.packing_samples:
        call = inspect.signature(actor.forward).bind(*args, **kwargs)
        call.apply_defaults()
        sequences, group = call.arguments["sequences"], call.arguments["ring_attn_group"]
        # The same call on the same inputs as inside Actor.forward gives the same indices and ring padding
        # (with ring attention it also re-sets ring_flash_attn's cu_seqlens, to the values already there).
        with torch.no_grad():
            *_, ring_pad_len, indices = unpad_and_slice_tensor(
                sequences, call.arguments["attention_mask"], group
            )
            entropy = gather_and_pad_tensor(entropy, group, ring_pad_len, indices, *sequences.shape)
    return entropy[:, :-1]


# Status keys of the parts of actor/entropy_pos and actor/entropy_neg, from the policy actors to the trainer.
ENTROPY_PARTS = "_asym_entropy/"


def install_token_entropy(ppo_trainer) -> None:
    """Hook the per-token entropy of the policy's training forwards into the step's metrics and into our loss.

    Each training forward (``ActorPPOTrainer.training_step``'s ``self.actor(..., return_output=True)``, which
    returns ``(log_probs, output)``; experience-making forwards return a tensor) runs a hook that computes
    ``training_forward_entropy``; Entropy Advantage (``AsymPolicyLoss`` with ``entropy_alpha``) takes it before
    the loss is called. ``training_step`` is wrapped so that its ``metrics`` gain ``actor/entropy``, the
    micro-batch's token-mean entropy, with weight "token": upstream's ``ppo_train`` multiplies a "token" metric
    by the micro-batch's action-token count, sums over DP ranks and micro-batches, and divides by the total
    count, which makes it the exact token mean over the step's response tokens.
    """
    latest = {}

    def record(module, args, kwargs, output):
        if not isinstance(output, tuple):
            return
        latest["entropy"] = entropy = training_forward_entropy(module, args, kwargs, output[1])
        loss_fn = ppo_trainer.actor_loss_fn
        if isinstance(loss_fn, AsymPolicyLoss) and loss_fn.needs_entropy:
            loss_fn.token_entropy = entropy

    ppo_trainer.actor.register_forward_hook(record, with_kwargs=True)
    training_step = ppo_trainer.training_step

    def training_step_with_entropy(experience, *args, **kwargs):
        status = training_step(experience, *args, **kwargs)
        entropy = latest.pop("entropy")  # (B, T-1); a KeyError if the step made no training forward
        mask = experience.action_mask  # (B, A)
        response_entropy = entropy[:, -mask.shape[1] :]
        metrics, weights = status["metrics"], status["weights"]
        metrics["actor/entropy"] = mean_token_entropy(response_entropy, mask)
        weights["actor/entropy"] = "token"
        if experience.scores is not None:
            # Correct / wrong rollouts: sums and token counts, each divided by the micro-batch's tokens because
            # upstream multiplies a "token" metric back by them; the trainer divides the added-up sum by the
            # added-up count (AsymPPOTrainer.ppo_train), which is the exact mean over those tokens.
            tokens = mask.sum().clamp(min=1)
            for key, value in entropy_by_correctness(response_entropy, mask, experience.scores).items():
                metrics[ENTROPY_PARTS + key] = value / tokens
                weights[ENTROPY_PARTS + key] = "token"
        return status

    ppo_trainer.training_step = training_step_with_entropy  # an instance attribute: ppo_train calls it


def install_cov_frac(ppo_trainer) -> None:
    """Add ``actor/cov_frac`` to each training step's metrics when the loss runs Clip-Cov or KL-Cov: the
    micro-batch's fraction with weight "token", which upstream's ``ppo_train`` turns into the exact fraction over
    the step's response tokens (as ``actor/entropy``)."""
    training_step = ppo_trainer.training_step

    def training_step_with_cov_frac(experience, *args, **kwargs):
        status = training_step(experience, *args, **kwargs)
        loss_fn = ppo_trainer.actor_loss_fn
        if isinstance(loss_fn, AsymPolicyLoss) and loss_fn.cov_frac is not None:
            status["metrics"]["actor/cov_frac"], loss_fn.cov_frac = loss_fn.cov_frac, None
            status["weights"]["actor/cov_frac"] = "token"
        return status

    ppo_trainer.training_step = training_step_with_cov_frac


class AsymPolicyModelActor(PolicyModelActor):
    """Upstream's policy actor; after its model and trainer are built, installs ``AsymPolicyLoss`` if needed
    and, always, the token entropy (``actor/entropy`` is logged every step)."""

    def init_model_from_pretrained(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        super().init_model_from_pretrained(strategy, pretrain, max_steps, vllm_engines)
        if needs_policy_loss(strategy.args):
            install_policy_loss(self.trainer, strategy.args)
            install_cov_frac(self.trainer)
        install_token_entropy(self.trainer)
        # The global step of the next update, for the Clip-Cov / KL-Cov seed: upstream's PPOTrainer.ppo_train
        # calls fit once per rollout step (with the actor never frozen: --critic.freezing_steps < 1), and a
        # resumed run starts at the checkpoint's step, so a resumed run draws what the uninterrupted one did.
        self.asym_global_step = int(getattr(self, "checkpoint_states", {}).get("global_step", 0))

    def fit(self, kl_ctl: float = 0):
        loss_fn = self.trainer.actor_loss_fn
        if isinstance(loss_fn, AsymPolicyLoss):
            loss_fn.begin_step(self.asym_global_step)
        self.asym_global_step += 1
        return super().fit(kl_ctl)

    def weight_sync_log_probs(self, sequences, action_mask, attention_mask):
        """``(B, A)`` log-probs of the response tokens at temperature 1, as vLLM reports the tokens it chose
        (``--asym.check_weight_sync``); upstream's forward otherwise divides the logits by the rollout
        temperature."""
        temperature, self.actor.temperature = self.actor.temperature, 1.0
        try:
            return self.forward(sequences, action_mask, attention_mask)
        finally:
            self.actor.temperature = temperature
