"""AsymPPOTrainer's per-step metrics: entropy under its METRICS name, and the positive-rollout log-prob gain
from one extra actor forward (the forward is faked: it needs the GPU actors)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from asym_openrlhf.algorithms.metrics import METRICS  # noqa: E402
from asym_openrlhf.integration import trainer as trainer_module  # noqa: E402
from asym_openrlhf.integration.upstream import Experience  # noqa: E402


class FakeMaker:
    """Stands in for the experience maker's two dispatch helpers: 'the actor' returns ``new_log_probs``."""

    def __init__(self, experiences, new_log_probs):
        self.latest_experiences = experiences
        self.new_log_probs = new_log_probs
        self.forward_kwargs = None

    def _dispatch_forward(self, group, sync_condition, **kwargs):
        self.forward_kwargs = kwargs
        return "refs"

    def _flatten_results(self, refs, duplicate_factor):
        return self.new_log_probs


def make_trainer(log_gain: bool, maker: FakeMaker):
    trainer = object.__new__(trainer_module.AsymPPOTrainer)  # skip building datasets: only the metrics run
    trainer.args = SimpleNamespace(
        asym=SimpleNamespace(log_pos_logprob_gain=log_gain),
        ds=SimpleNamespace(ring_attn_size=1, tensor_parallel_size=1),
        train=SimpleNamespace(colocate_all=True, colocate_actor_ref=False),
    )
    trainer.actor_model_group = "actors"
    trainer.experience_maker = maker
    return trainer


def experience(scores, old, mask):
    return Experience(
        sequences=torch.zeros(len(scores), 5, dtype=torch.long),
        attention_mask=torch.ones(len(scores), 5, dtype=torch.long),
        action_mask=torch.tensor(mask, dtype=torch.bool),
        action_log_probs=torch.tensor(old),
        scores=torch.tensor(scores),
    )


def test_positive_logprob_gain_is_the_mean_over_all_correct_rollouts(monkeypatch):
    first = experience([1.0, 0.0], [[-1.0, -1.0], [-2.0, -2.0]], [[1, 1], [1, 0]])
    second = experience([1.0, 1.0, 0.0], [[-1.0, 0.0], [-1.0, -1.0], [-3.0, -3.0]], [[1, 0], [1, 1], [1, 1]])
    new = [
        torch.tensor([[-0.5, -0.5], [-9.0, -9.0]]),  # correct rollout: +0.5 +0.5 = +1.0 (wrong one ignored)
        torch.tensor([[-0.5, 5.0], [-1.5, -1.5], [0.0, 0.0]]),  # +0.5 (second token masked), -1.0
    ]
    maker = FakeMaker([first, second], new)
    monkeypatch.setattr(trainer_module.PPOTrainer, "ppo_train", lambda self, step: {"policy_loss": 0.1})
    status = make_trainer(True, maker).ppo_train(3)
    # Three correct rollouts, sequence gains 1.0, 0.5 and -1.0: mean 0.16667 (not the mean of batch means).
    assert status["actor/pos_logprob_gain"] == pytest.approx(0.5 / 3)
    assert [len(v) for v in maker.forward_kwargs.values()] == [2, 2, 2]  # one forward over the whole batch


def test_gain_is_off_by_default_and_entropy_is_the_policy_actors(monkeypatch):
    maker = FakeMaker([], [])
    # actor/entropy comes from the policy actors (exact token mean, tests/test_openrlhf_entropy.py); upstream's
    # loss-normalised entropy_loss must not overwrite it or stand in for it.
    upstream_status = {"policy_loss": 0.1, "entropy_loss": 0.42, "actor/entropy": 0.21}
    monkeypatch.setattr(trainer_module.PPOTrainer, "ppo_train", lambda self, step: dict(upstream_status))
    status = make_trainer(False, maker).ppo_train(1)
    assert status["actor/entropy"] == 0.21 and "actor/pos_logprob_gain" not in status
    assert maker.forward_kwargs is None  # no extra forward when the flag is off


def test_every_logged_name_is_documented():
    logged = {
        "rollout/accuracy",
        "rollout/all_solved_frac",
        "rollout/none_solved_frac",
        "rollout/acc_hist/c{c}",
        "actor/logp_adv_cov",
        "actor/logp_adv_cov/c{c}",
        "actor/entropy",
        "actor/pos_logprob_gain",
    }
    assert logged <= set(METRICS)


def test_entropy_controller_moves_beta_between_steps_and_rides_in_the_checkpoint(monkeypatch):
    """--asym.target_entropy in the trainer actor: the step's actor/entropy sets the next step's beta, which
    the experience maker uses; upstream's checkpoint client states carry it, and a resume restores it."""
    from asym_openrlhf.algorithms.advantages import AdvantageOptions
    from asym_openrlhf.algorithms.control import BetaController, options_at_step
    from asym_openrlhf.cli.train_ppo_ray import resolve_config

    args = resolve_config(
        [*upstream_support.LAUNCH_ARGV, "--advantage_estimator", "asym_grpo", "--asym.target_entropy", "1.5",
         "--asym.adapt_rate", "0.2", "--asym.adapt", "both"]
    )  # fmt: skip
    assert args.asym.beta_control == dict(target=1.5, rate=0.2, adapt="both", beta_pos=0.9, beta_neg=0.4)
    trainer = object.__new__(trainer_module.AsymPPOTrainer)
    trainer.args = args
    trainer.beta_controller = BetaController(**args.asym.beta_control)
    trainer.experience_maker = SimpleNamespace(
        step=0, beta_controller=trainer.beta_controller, latest_experiences=[]
    )
    monkeypatch.setattr(trainer_module.PPOTrainer, "ppo_train", lambda self, step: {"actor/entropy": 1.0})
    trainer.ppo_train(0)  # entropy 1.0 < 1.5: beta+ up by 0.2 * 0.5, beta- down by the same
    assert (trainer.beta_controller.beta_pos, trainer.beta_controller.beta_neg) == pytest.approx((1.0, 0.3))

    seen = {}
    maker_options = lambda maker: options_at_step(AdvantageOptions(), maker.step, 10, maker.beta_controller)  # noqa: E731
    monkeypatch.setattr(trainer_module.PPOTrainer, "train_step", lambda self, samples, step: (seen.update(
        options=maker_options(self.experience_maker), step=step), {}, step + 1)[1:])  # fmt: skip
    trainer.train_step([], 1)
    assert (seen["options"].beta_pos, seen["options"].beta_neg) == pytest.approx((1.0, 0.3)) and seen[
        "step"
    ] == 1

    saved = {}
    monkeypatch.setattr(trainer_module.PPOTrainer, "save_logs_and_checkpoints", lambda self, step, logs, states: saved.update(states))  # fmt: skip
    trainer.args.ckpt.save_hf = False
    trainer.samples_generator = SimpleNamespace(buffer_state=lambda: [])  # nothing generated past the save
    trainer.save_logs_and_checkpoints(1, {}, {"global_step": 1})
    assert saved[trainer_module.BETA_CONTROL_STATE] == pytest.approx({"beta_pos": 1.0, "beta_neg": 0.3})
    assert saved[trainer_module.SAMPLE_BUFFER_STATE] == []

    resumed = object.__new__(trainer_module.AsymPPOTrainer)
    resumed.beta_controller = BetaController(**args.asym.beta_control)
    monkeypatch.setattr(trainer_module.PPOTrainer, "init_checkpoint_states", lambda self: dict(saved))
    resumed.init_checkpoint_states()
    assert (resumed.beta_controller.beta_pos, resumed.beta_controller.beta_neg) == pytest.approx((1.0, 0.3))


def test_upstream_eval_pass_keys_are_the_unbiased_pass_at_1_and_pass_at_n():
    """On the OpenRLHF path, held-out pass@1 and pass@n are upstream's own ``eval_<ds>_pass1`` and
    ``eval_<ds>_pass<n>`` (``--eval.n_samples_per_prompt n --eval.temperature T``): from n samples per prompt
    they are exactly the unbiased estimators lite logs as ``eval/pass_at_1`` and ``eval/pass_at_{G}``."""
    from asym_eval.scoring import mean_pass_at_k

    from asym_openrlhf.integration.upstream import ppo_trainer_module

    n = 4
    correct = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0], [0, 0, 1, 0]]
    prompts = [f"p{i}" for i in range(len(correct))]
    loader = [(["math500"] * len(prompts), prompts, ["a"] * len(prompts), [None] * len(prompts))]
    samples = [
        SimpleNamespace(prompts=[prompt], rewards=[float(hit)], response_length=None, truncated=None)
        for prompt, row in zip(prompts, correct)
        for hit in row
    ]
    logs = ppo_trainer_module.compute_eval_metrics(loader, samples, n)
    assert logs["eval_math500_pass1"] == pytest.approx(mean_pass_at_k(correct, 1)) == pytest.approx(0.4)
    assert logs[f"eval_math500_pass{n}"] == pytest.approx(mean_pass_at_k(correct, n)) == pytest.approx(0.8)
