"""AsymExperienceMaker on real OpenRLHF ``Experience`` objects: shuffled indices, mixed groups, every token.

Upstream estimators must come out exactly as OpenRLHF's own ``RemoteExperienceMaker`` makes them.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from openrlhf.trainer.ppo_utils.kl_controller import FixedKLController  # noqa: E402

from asym_openrlhf.algorithms.advantages import AdvantageOptions, compute_advantages  # noqa: E402
from asym_openrlhf.algorithms.metrics import (  # noqa: E402
    group_accuracy_histogram,
    group_logp_adv_covariance,
    solved_fractions,
)
from asym_openrlhf.cli.train_ppo_ray import resolve_config  # noqa: E402
from asym_openrlhf.integration.experience_maker import AsymExperienceMaker  # noqa: E402
from asym_openrlhf.integration.trainer import rollout_metrics  # noqa: E402
from asym_openrlhf.integration.upstream import Experience, RemoteExperienceMaker  # noqa: E402

G = 8  # = --rollout.n_samples_per_prompt in upstream_support.LAUNCH_ARGV
# One group per interesting accuracy: none, 1/8, 3/8, 4/8, 7/8 and all solved.
CORRECT = torch.tensor(
    [
        [0, 0, 0, 0, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0, 0],
        [1, 0, 1, 0, 0, 1, 0, 0],
        [1, 1, 0, 0, 1, 0, 1, 0],
        [1, 1, 1, 1, 0, 1, 1, 1],
        [1, 1, 1, 1, 1, 1, 1, 1],
    ]
)
BASE_ARGV = [*upstream_support.LAUNCH_ARGV, "--rollout.max_new_tokens", "16"]


def make_args(*extra: str):
    return resolve_config([*BASE_ARGV, *extra])


def make_experiences(correct: torch.Tensor, seed: int = 0) -> list:
    """The P*G samples in a shuffled order, split into experiences of uneven sizes, as dynamic batching does.

    ``rewards`` is a shaped reward (score - 0.25) on purpose: our estimators must read ``scores``.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(correct.numel(), generator=generator).tolist()
    flat = correct.reshape(-1).float()
    experiences, start = [], 0
    for size in (5, 1, 12, 7, 3, 20):
        ids = order[start : start + size]
        start += size
        lengths = torch.randint(1, 9, (size,), generator=generator)
        width = int(lengths.max())
        action_mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # (B, A), right padded
        experiences.append(
            Experience(
                sequences=torch.zeros(size, width + 3, dtype=torch.long),
                action_mask=action_mask,
                action_log_probs=-torch.rand(size, width, generator=generator) * action_mask,
                kl=torch.zeros(size, width),
                rewards=flat[ids] - 0.25,
                scores=flat[ids],
                response_length=lengths.float(),
                index=ids,
                info={"reward": flat[ids] - 0.25},
            )
        )
    assert start == correct.numel()
    return experiences


def make_maker(cls, args):
    strategy = SimpleNamespace(args=args)
    return cls(None, None, None, None, FixedKLController(args.algo.kl.init_coef), strategy, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0.9", "--asym.beta_neg", "0.4"],
        ["--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0", "--asym.beta_neg", "0"],
        ["--advantage_estimator", "pass_at_k", "--pass_k.k", "5"],
        ["--advantage_estimator", "pos_only"],
        ["--advantage_estimator", "neg_only"],
        ["--advantage_estimator", "symmetric"],
        ["--advantage_estimator", "main_clip_higher"],
        ["--advantage_estimator", "ent_increase"],
        ["--advantage_estimator", "ent_decrease"],
    ],
    ids=lambda argv: "-".join(argv[1::2]),
)
def test_our_estimators_put_the_registry_advantage_on_every_token(argv):
    args = make_args(*argv)
    name = args.asym.estimator
    options = AdvantageOptions(
        beta_pos=args.asym.beta_pos, beta_neg=args.asym.beta_neg, flip=args.asym.flip, k=args.asym.k
    )
    expected = compute_advantages(name, CORRECT, options).reshape(-1)  # by sample id
    experiences = make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(
        make_experiences(CORRECT)
    )
    for experience in experiences:
        mask = experience.action_mask
        want = expected[experience.index].unsqueeze(1).expand_as(mask)
        assert torch.equal(experience.advantages[mask], want[mask])  # exact, every response token
        assert torch.all(experience.advantages[~mask] == 0)
        assert torch.equal(experience.returns, experience.advantages)
        assert torch.equal(experience.info["return"], expected[experience.index])


def test_asymgrpo_values_on_a_known_group():
    # p = 1/8 with (0.9, 0.4): A_pos = 7^0.9 = 5.7623, A_neg = -(1/7)^0.4 = -0.4592; p = 1 and p = 0: 0.
    args = make_args("--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0.9", "--asym.beta_neg", "0.4")
    experiences = make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(
        make_experiences(CORRECT)
    )
    by_id = {}
    for experience in experiences:
        for row, sample in enumerate(experience.index):
            by_id[sample] = experience.advantages[row, 0].item()
    assert by_id[8 + 2] == pytest.approx(7**0.9, rel=1e-6)
    assert by_id[8 + 0] == pytest.approx(-((1 / 7) ** 0.4), rel=1e-6)
    assert [by_id[i] for i in range(8)] == [0.0] * 8  # none solved
    assert [by_id[40 + i] for i in range(8)] == [0.0] * 8  # all solved


@pytest.mark.parametrize("name", ["group_norm", "dr_grpo"])
def test_group_norm_and_dr_grpo_run_our_registry_and_agree_with_upstreams_code(name):
    """One name, one algorithm: the launcher runs group_norm and dr_grpo through the registry, as lite does;
    on binary rewards that is upstream's formula (std + 1e-6 where upstream adds 1e-9)."""
    args = make_args("--advantage_estimator", name)
    assert args.asym.estimator == name
    ours = make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(make_experiences(CORRECT))
    theirs = make_maker(RemoteExperienceMaker, copy.deepcopy(args)).compute_advantages_and_returns(
        make_experiences(CORRECT)
    )
    for mine, upstream in zip(ours, theirs):
        assert torch.allclose(mine.advantages, upstream.advantages, atol=1e-5)


@pytest.mark.parametrize("name", ["rloo", "reinforce_baseline", "reinforce"])
def test_upstream_estimators_are_untouched(name):
    args = make_args("--advantage_estimator", name)
    assert args.asym.estimator is None
    ours = make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(make_experiences(CORRECT))
    theirs = make_maker(RemoteExperienceMaker, copy.deepcopy(args)).compute_advantages_and_returns(
        make_experiences(CORRECT)
    )
    for mine, upstream in zip(ours, theirs):
        assert torch.equal(mine.advantages, upstream.advantages)
        assert torch.equal(mine.returns, upstream.returns)


def test_missing_scores_is_a_clear_error():
    args = make_args("--advantage_estimator", "asym_grpo")
    experiences = make_experiences(CORRECT)
    experiences[2].scores = None
    with pytest.raises(ValueError, match="scores"):
        make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(experiences)


def test_rollout_metrics_match_the_metric_functions_on_regrouped_samples():
    args = make_args("--advantage_estimator", "asym_grpo")
    experiences = make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(
        make_experiences(CORRECT)
    )
    metrics = rollout_metrics(experiences, G)

    # Oracle: gather per-sample values by id, then call the metric functions directly.
    mean_logp, advantage = torch.empty(CORRECT.numel()), torch.empty(CORRECT.numel())
    for experience in experiences:
        mask = experience.action_mask.float()
        mean_logp[experience.index] = (experience.action_log_probs * mask).sum(1) / mask.sum(1)
        advantage[experience.index] = experience.advantages[:, 0]
    covariance = group_logp_adv_covariance(mean_logp.reshape(-1, G), advantage.reshape(-1, G))

    assert metrics["rollout/accuracy"] == pytest.approx(CORRECT.float().mean().item())
    assert metrics["rollout/all_solved_frac"] == solved_fractions(CORRECT)["rollout/all_solved_frac"]
    assert metrics["rollout/all_solved_frac"] == pytest.approx(1 / 6)  # one group of six
    assert metrics["rollout/none_solved_frac"] == pytest.approx(1 / 6)
    histogram = group_accuracy_histogram(CORRECT)
    assert [metrics[f"rollout/acc_hist/c{c}"] for c in range(G + 1)] == pytest.approx(histogram.tolist())
    assert metrics["actor/logp_adv_cov"] == pytest.approx(covariance.mean().item(), abs=1e-6)
    assert metrics["actor/logp_adv_cov/c8"] == pytest.approx(0.0, abs=1e-7)  # all-same group: A constant
    assert metrics["actor/logp_adv_cov/c1"] == pytest.approx(covariance[1].item(), abs=1e-6)


def test_a_beta_schedule_moves_beta_with_the_trainers_step():
    """The launcher's schedule flags reach the experience maker; at the step the trainer set, the advantages
    are the registry's at the scheduled beta (linear: beta_neg 0.4 -> 1.0 over 5 steps, 0.7 at step 2)."""
    args = make_args(
        "--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0.9", "--asym.beta_neg", "0.4",
        "--asym.beta_schedule", "linear", "--asym.beta_neg_end", "1.0", "--asym.scale_pos", "0.5",
    )  # fmt: skip
    maker = make_maker(AsymExperienceMaker, args)
    maker.step, maker.total_steps = 2, 5
    experiences = maker.compute_advantages_and_returns(make_experiences(CORRECT))
    want = compute_advantages(
        "asym_grpo", CORRECT, AdvantageOptions(beta_pos=0.9, beta_neg=0.7, scale_pos=0.5)
    ).reshape(-1)
    for e in experiences:
        got = e.advantages.sum(-1) / e.action_mask.sum(-1)  # the same value on every response token
        assert torch.allclose(got, want[e.index], atol=1e-6)
    assert (maker.latest_options.beta_pos, maker.latest_options.beta_neg) == pytest.approx((0.9, 0.7))


@pytest.mark.parametrize(
    "flags,flag",
    [
        (
            ["--advantage_estimator", "main", "--asym.beta_schedule", "linear", "--asym.beta_pos_end", "0"],
            "--asym.beta_schedule",
        ),
        (["--advantage_estimator", "asym_grpo", "--asym.beta_schedule", "linear"], "--asym.beta_schedule"),
        (["--advantage_estimator", "asym_grpo", "--asym.beta_neg_end", "5"], "--asym.beta_neg_end"),
        (["--advantage_estimator", "rloo", "--asym.scale_pos", "2"], "--asym.scale_pos"),  # OpenRLHF's own
    ],
)
def test_bad_schedule_or_weight_flags_are_refused_naming_the_flag(flags, flag):
    with pytest.raises(ValueError, match=f"^{flag}"):
        make_args(*flags)


def test_advantages_that_are_not_finite_stop_the_step_naming_the_group(monkeypatch):
    """No flag in range gives a non-finite advantage today (beta <= 4), but a new entry or option could: the step
    must stop there, naming the group, not hand NaN to the loss (every weight would turn NaN without a word)."""
    from asym_openrlhf.integration import experience_maker

    def one_group_nan(name, correct, options):
        advantages = compute_advantages(name, correct, options)
        advantages[2, 0] = float("nan")
        return advantages

    monkeypatch.setattr(experience_maker, "compute_advantages", one_group_nan)
    args = make_args("--advantage_estimator", "asym_grpo")
    with pytest.raises(
        ValueError, match=r"advantages are not finite at step 1: asym_grpo .* correct = \[1, 0, 1"
    ):
        make_maker(AsymExperienceMaker, args).compute_advantages_and_returns(make_experiences(CORRECT))


def test_samples_without_a_reward_stop_the_step_naming_the_cause():
    """Upstream leaves a sample's reward None when the reward function raised (our grader, broken); the batch
    must not go on (upstream would then fail deep inside, or ask for a reward model that is not there)."""
    args = make_args("--advantage_estimator", "asym_grpo")
    samples = [SimpleNamespace(rewards=torch.tensor([1.0])) for _ in range(4)]
    samples[1].rewards = None
    maker = make_maker(AsymExperienceMaker, args)
    with pytest.raises(RuntimeError, match=r"^1 of 4 rollouts have no reward: the reward function raised"):
        maker.make_experience_batch(samples)
    for sample in samples:  # all of them: no reward model stands behind them either
        sample.rewards = None
    with pytest.raises(RuntimeError, match=r"^4 of 4 rollouts have no reward"):
        maker.make_experience_batch(samples)
