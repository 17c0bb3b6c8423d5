"""AsymPolicyLoss against OpenRLHF's PolicyLoss: same answer where it should be, Dr.GRPO and Entropy
Advantage where upstream has nothing, and the actor hook that hands it the entropy (on a real actor:
tests/test_openrlhf_entropy.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers.modeling_outputs import CausalLMOutputWithPast

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from asym_openrlhf.algorithms.losses import entropy_shaped_advantages  # noqa: E402
from asym_openrlhf.cli.train_ppo_ray import resolve_config  # noqa: E402
from asym_openrlhf.integration.policy_loss import (  # noqa: E402
    AsymPolicyLoss,
    AsymPolicyModelActor,
    build_policy_loss,
    install_policy_loss,
    install_token_entropy,
    needs_policy_loss,
)
from asym_openrlhf.integration.upstream import PolicyLoss, PolicyModelActor  # noqa: E402

BASE_ARGV = [*upstream_support.LAUNCH_ARGV, "--rollout.max_new_tokens", "10"]


def batch(seed=0):
    generator = torch.Generator().manual_seed(seed)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)  # (B=3, A=4)
    old = -torch.rand(3, 4, generator=generator)
    new = old + 0.3 * torch.randn(3, 4, generator=generator)  # ratios both inside and outside the clip
    advantages = torch.tensor([[1.5], [-0.5], [2.0]]).expand(3, 4) * mask
    return new, old, advantages, mask


def test_token_mean_without_entropy_is_upstream_exactly():
    new, old, advantages, mask = batch()
    kwargs = dict(clip_eps_low=0.2, clip_eps_high=0.28)
    ours = AsymPolicyLoss(**kwargs)(new, old, advantages, action_mask=mask, dp_size=2, batch_num_tokens=7.0)
    theirs = PolicyLoss(**kwargs)(new, old, advantages, action_mask=mask, dp_size=2, batch_num_tokens=7.0)
    for mine, upstream in zip(ours, theirs):
        assert (mine is None and upstream is None) or torch.equal(mine, upstream)


def test_entropy_advantage_is_upstream_loss_on_shaped_advantages():
    new, old, advantages, mask = batch()
    entropy = torch.rand(3, 6)  # (B, T-1): the actor's entropy over the whole sequence; the last A are used
    loss_fn = AsymPolicyLoss(entropy_alpha=0.4, entropy_kappa=2.0)
    loss_fn.token_entropy = entropy
    ours = loss_fn(new, old, advantages, action_mask=mask)
    shaped = entropy_shaped_advantages(advantages, entropy[:, -4:], 0.4, 2.0)
    theirs = PolicyLoss()(new, old, shaped, action_mask=mask)
    assert torch.equal(ours[0], theirs[0])
    assert loss_fn.token_entropy is None  # used once
    with pytest.raises(RuntimeError, match="entropy"):
        loss_fn(new, old, advantages, action_mask=mask)  # no entropy handed over: refuse, never reuse


def test_dr_grpo_loss_is_sum_over_tokens_divided_by_the_constant():
    _, old, advantages, mask = batch()
    loss_fn = AsymPolicyLoss(aggregation="seq_sum_constant", max_response_len=10)
    # On-policy (ratio 1) the token loss is -A: sequences sum -1.5*3, 0.5*2, -2.0*4 = -4.5, 1.0, -8.0.
    # Each / 10, summed over the 3 sequences (-1.15), / the step's 6 sequences, * 2 DP ranks = -0.38333.
    loss, clip_ratio, ppo_kl, vllm_kl, filtered = loss_fn(
        old, old, advantages, action_mask=mask, dp_size=2, global_batch_size=torch.tensor(6.0)
    )
    assert loss.item() == pytest.approx(-1.15 / 6 * 2)
    assert clip_ratio.item() == 0.0 and ppo_kl.item() == 0.0 and vllm_kl is None and filtered is None
    # Without step information it is the plain mean over this batch's sequences: -1.15 / 3.
    assert loss_fn(old, old, advantages, action_mask=mask)[0].item() == pytest.approx(-1.15 / 3)


def test_build_policy_loss_reads_the_launcher_configuration():
    args = resolve_config(
        [*BASE_ARGV, "--advantage_estimator", "dr_grpo", "--actor.eps_clip_low_high", "0.2", "0.28"]
    )
    assert needs_policy_loss(args)
    loss_fn = build_policy_loss(args)
    assert (loss_fn.aggregation, loss_fn.max_response_len) == ("seq_sum_constant", 10)
    assert (loss_fn.clip_eps_low, loss_fn.clip_eps_high) == (0.2, 0.28)
    plain = resolve_config([*BASE_ARGV, "--advantage_estimator", "asym_grpo"])
    assert not needs_policy_loss(plain)  # upstream's PolicyLoss stays in place


def test_the_entropy_hook_hands_each_training_forwards_entropy_to_entropy_advantage():
    class FakeActor(torch.nn.Module):
        """Returns what upstream's Actor returns: log-probs, and on training forwards (log-probs, output)."""

        packing_samples = False

        def forward(self, sequences, action_mask=None, return_output=False, return_entropy=False):
            log_probs = torch.zeros(1, 2)
            output = CausalLMOutputWithPast(logits=torch.zeros(1, 4, 5))  # (B, T, V): uniform over 5
            if return_entropy:
                output.entropy = torch.ones(1, 3)  # upstream's own (B, T-1) entropy
            return (log_probs, output) if return_output else log_probs

    args = resolve_config([*BASE_ARGV, "--advantage_estimator", "group_norm", "--entropy_adv.alpha", "0.4"])
    assert args.actor.entropy_coef is None  # the launcher no longer makes upstream compute entropy under grad
    trainer = SimpleNamespace(actor=FakeActor(), actor_loss_fn=None, training_step=None)
    loss_fn = install_policy_loss(trainer, args)
    install_token_entropy(trainer)
    assert trainer.actor_loss_fn is loss_fn and loss_fn.entropy_alpha == 0.4
    trainer.actor(None)  # an experience-making forward: no entropy
    assert loss_fn.token_entropy is None
    trainer.actor(None, return_output=True)  # not computed upstream: from the logits, without grad
    assert torch.allclose(loss_fn.token_entropy, torch.full((1, 3), math.log(5)))
    trainer.actor(
        None, return_output=True, return_entropy=True
    )  # computed upstream (an entropy bonus): reused
    assert torch.equal(loss_fn.token_entropy, torch.ones(1, 3))


def test_dr_grpo_loss_stays_finite_for_a_huge_ratio():
    _, old, advantages, mask = batch()
    loss_fn = AsymPolicyLoss(aggregation="seq_sum_constant", max_response_len=10)
    assert torch.isfinite(loss_fn(old + 1000.0, old, -advantages.abs(), action_mask=mask)[0])


@pytest.mark.parametrize("estimator,installed", [("dr_grpo", True), ("asym_grpo", False)])
def test_policy_actor_installs_our_loss_only_where_needed(monkeypatch, estimator, installed):
    def upstream_training_step(experience, kl_ctl, step, loss_batch_info=None):
        return {"metrics": {}, "weights": {}}

    def upstream_init(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        self.trainer = SimpleNamespace(
            actor=torch.nn.Identity(),
            actor_loss_fn="upstream's PolicyLoss",
            training_step=upstream_training_step,
        )

    monkeypatch.setattr(PolicyModelActor, "init_model_from_pretrained", upstream_init)
    actor = object.__new__(AsymPolicyModelActor)  # the plain class under the Ray actor
    strategy = SimpleNamespace(args=resolve_config([*BASE_ARGV, "--advantage_estimator", estimator]))
    actor.init_model_from_pretrained(strategy, "model")
    assert isinstance(actor.trainer.actor_loss_fn, AsymPolicyLoss) == installed
    assert actor.trainer.training_step is not upstream_training_step  # actor/entropy: always wrapped in


@pytest.mark.parametrize(
    "flags",
    [
        ["--cov.mode", "clip_cov", "--cov.ratio", "0.3"],
        ["--cov.mode", "kl_cov", "--cov.ratio", "0.3", "--cov.kl_coef", "0.5"],
        ["--top_entropy.rho", "0.2"],
    ],
    ids=["clip_cov", "kl_cov", "top_entropy"],
)
def test_token_control_is_the_shared_token_loss_under_upstreams_normalisation(flags):
    """The launcher's flags reach the loss; its value is the one token loss of both paths, reduced by
    upstream's own aggregate_loss with the step's global token count (7 here) and DP size."""
    from asym_openrlhf.algorithms.losses import TokenControl, controlled_token_loss, cov_generator
    from asym_openrlhf.integration.upstream import upstream_aggregate_loss

    args = resolve_config([*BASE_ARGV, "--advantage_estimator", "asym_grpo", *flags])
    assert needs_policy_loss(args)
    loss_fn = build_policy_loss(args)
    new, old, advantages, mask = batch()
    entropy = torch.rand(3, 6, generator=torch.Generator().manual_seed(1))
    loss_fn.token_entropy = entropy
    loss_fn.begin_step(12)
    loss, clip_ratio, *_ = loss_fn(new, old, advantages, action_mask=mask, dp_size=2, batch_num_tokens=7.0)
    # Cov draws come from (--train.seed 42, global step 12, micro-batch 0)
    token_loss, clipped, cov = controlled_token_loss(
        new,
        old,
        advantages,
        mask,
        0.2,
        0.2,
        TokenControl(**args.asym.token_control),
        entropy[:, -4:],
        cov_generator(42, 12, 0),
    )
    want = upstream_aggregate_loss(token_loss, mask, dp_size=2, batch_num_tokens=7.0)
    assert torch.allclose(loss, want) and clip_ratio.item() == pytest.approx(
        clipped[mask].float().mean().item()
    )
    if args.asym.token_control.get("cov_mode"):
        assert loss_fn.cov_frac.item() == pytest.approx(cov[mask].float().mean().item())
    assert loss_fn.micro_batch == 1  # the next micro-batch draws from (42, 12, 1)


@pytest.mark.parametrize(
    "flags,flag",
    [
        (["--cov.ratio", "0.1"], "--cov.ratio"),  # without a mode
        (["--cov.mode", "clip_kl"], "--cov.mode"),
        (["--cov.mode", "clip_cov", "--cov.kl_coef", "1"], "--cov.kl_coef"),
        (["--top_entropy.rho", "1.5"], "--top_entropy.rho"),
        (["--top_entropy.rho", "0.2", "--actor.dual_clip", "3"], "--actor.dual_clip"),
    ],
)
def test_bad_token_control_flags_are_refused_naming_the_flag(flags, flag):
    with pytest.raises(ValueError, match=f"^{flag}"):
        resolve_config([*BASE_ARGV, "--advantage_estimator", "asym_grpo", *flags])


def test_the_policy_actor_seeds_cov_by_the_global_step_it_resumes_from(monkeypatch):
    """fit n after resuming at global step S draws from step S + n, as the uninterrupted run did; each step's
    actor/cov_frac reaches upstream's metrics with the "token" weight (the exact fraction over the step)."""
    calls = []

    class Actor(torch.nn.Module):
        packing_samples = False

        def forward(self, sequences, return_output=False):  # a training forward: (log-probs, output)
            return torch.zeros(3, 4), CausalLMOutputWithPast(logits=torch.zeros(3, 5, 6))

    def upstream_training_step(experience, kl_ctl, step, loss_batch_info=None):
        calls.append((loss_fn.step, loss_fn.micro_batch))
        actor.trainer.actor(None, return_output=True)
        new, old, advantages, mask = batch()
        loss_fn(new, old, advantages, action_mask=mask)
        return {"metrics": {}, "weights": {}}

    def upstream_init(self, strategy, pretrain, max_steps=None, vllm_engines=None):
        self.checkpoint_states = {"global_step": 12}  # what upstream loads from --ckpt.path/_actor
        self.trainer = SimpleNamespace(
            actor=Actor(), actor_loss_fn=None, training_step=upstream_training_step
        )

    def upstream_fit(self, kl_ctl=0):
        experience = SimpleNamespace(action_mask=batch()[3], scores=None)
        return [self.trainer.training_step(experience, kl_ctl, step) for step in range(2)]

    monkeypatch.setattr(PolicyModelActor, "init_model_from_pretrained", upstream_init)
    monkeypatch.setattr(PolicyModelActor, "fit", upstream_fit)
    actor = object.__new__(AsymPolicyModelActor)
    flags = ["--cov.mode", "kl_cov", "--cov.ratio", "0.3"]  # 0.3 x 9 tokens: 2 or 3 a micro-batch
    args = resolve_config([*BASE_ARGV, "--advantage_estimator", "asym_grpo", *flags])
    actor.init_model_from_pretrained(SimpleNamespace(args=args), "model")
    loss_fn = actor.trainer.actor_loss_fn
    statuses = actor.fit() + actor.fit()
    assert calls == [(12, 0), (12, 1), (13, 0), (13, 1)]
    assert all(status["weights"]["actor/cov_frac"] == "token" for status in statuses)
    assert all(round(status["metrics"]["actor/cov_frac"].item() * 9) in (2, 3) for status in statuses)
