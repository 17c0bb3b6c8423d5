"""Small pieces of ``asym-rl lite``: answer extraction, tokenizer, task split, flag checks."""

from __future__ import annotations

import argparse

import pytest

from asym_openrlhf.lite.study import add_arguments as add_study_arguments
from asym_openrlhf.lite.tasks import AdditionTask, last_boxed
from asym_openrlhf.lite.tiny import TIERS, build_tokenizer
from asym_openrlhf.lite.train import add_arguments, default_settings


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{55}", "55"),
        ("\\boxed{1}\\boxed{12}", "12"),  # the last one counts
        ("\\boxed{a{b}}x", "a{b}"),  # balanced braces
        ("\\boxed{12", None),  # unterminated: no answer
        ("\\boxed{7}\\boxed{8", "7"),  # an unterminated last box falls back to the previous one
        ("55", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_tokenizer_round_trip_is_char_level():
    tokenizer = build_tokenizer()
    ids = tokenizer("Q:47+8=A:", add_special_tokens=False)["input_ids"]
    assert len(ids) == len("Q:47+8=A:")  # one token per character, no BOS
    assert tokenizer.decode(ids + [tokenizer.eos_token_id], skip_special_tokens=True) == "Q:47+8=A:"


def test_addition_split_is_fixed_and_disjoint():
    tier = TIERS["default"]
    task, again = (
        AdditionTask(tier.max_digits, tier.heldout_size),
        AdditionTask(tier.max_digits, tier.heldout_size),
    )
    assert [p.id for p in task.heldout] == [p.id for p in again.heldout]
    assert len(task.heldout) == 256 and len(task.train) == 100 * 100 - 256
    assert not {p.id for p in task.heldout} & {p.id for p in task.train}
    problem = task.heldout[0]
    assert (
        problem.prompt == f"Q:{problem.id}=A:" and task.reward(f"\\boxed{{{problem.answer}}}", problem) == 1.0
    )


@pytest.mark.parametrize("add", [add_arguments, add_study_arguments])
def test_every_flag_has_help(add):
    parser = argparse.ArgumentParser()
    add(parser)
    missing = [a.dest for a in parser._actions if a.dest != "help" and not a.help]
    assert missing == []


@pytest.mark.parametrize(
    "overrides, flag",
    [
        (dict(mini_batches=0), "--mini_batches"),
        (dict(lr=-1.0), "--lr"),
        (
            dict(entropy_adv_kappa=1.0),
            "--entropy_adv.kappa",
        ),  # one declaration: errors name its main spelling
        (dict(group_size=1), "--group_size"),
        (dict(advantage_estimator="nope"), "--advantage_estimator"),
        (dict(eps_clip_low_high=(1.5, 0.2)), "--eps_clip_low_high"),
    ],
)
def test_bad_settings_name_the_flag(overrides, flag):
    with pytest.raises(ValueError, match=f"^{flag}"):
        default_settings(**overrides)


def _parse(argv: list[str]):
    from asym_openrlhf.lite.train import settings_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_the_launchers_flag_names_set_the_same_settings():
    """A command moves between `asym-rl lite` and the OpenRLHF launcher with the shared flags unchanged."""
    # (lite's name, the launcher's name, value(s)) for every setting the two paths share
    shared = [
        ("--advantage_estimator", "--algo.advantage.estimator", "asym_grpo"),
        ("--asym.beta_pos", "--asym.beta_pos", "0.7"),
        ("--asym.scale_pos", "--asym.scale_pos", "0.5"),
        ("--seed", "--train.seed", "3"),
        ("--group_size", "--rollout.n_samples_per_prompt", "4"),
        ("--prompts_per_step", "--rollout.batch_size", "8"),
        ("--lr", "--actor.adam.lr", "1e-4"),
        ("--max_grad_norm", "--actor.max_norm", "0.5"),
        ("--eps_clip_low_high", "--actor.eps_clip_low_high", "0.2 0.28"),
        ("--entropy_coef", "--actor.entropy_coef", "0.001"),
        ("--entropy_adv_alpha", "--entropy_adv.alpha", "0.4"),
        ("--entropy_adv_kappa", "--entropy_adv.kappa", "3"),
        ("--temperature", "--rollout.temperature", "0.9"),
        ("--max_new_tokens", "--rollout.max_new_tokens", "10"),
        ("--eval_every", "--eval.steps", "5"),
        ("--save_every", "--ckpt.save_steps", "7"),
        ("--model", "--actor.model_name_or_path", str(TIERS["quick"].checkpoint_dir)),
    ]
    lite_names = [item for ours, _, value in shared for item in (ours, *value.split())]
    launcher_names = [item for _, theirs, value in shared for item in (theirs, *value.split())]
    ours, theirs = _parse(lite_names), _parse(launcher_names)
    assert ours == theirs and ours != _parse([])
    assert (ours.group_size, ours.options.scale_pos, ours.eps_high) == (4, 0.5, 0.28)


def test_one_name_one_meaning_in_lite_as_in_the_launcher():
    """The launcher's defaults and derived settings: asym_grpo by default (so its betas can be set), Dr.GRPO's
    own loss aggregation, Entropy Advantage off until alpha is given, and OpenRLHF-only names refused in one
    line that names the paper's estimator."""
    from asym_openrlhf.algorithms.advantages import get_estimator

    settings = _parse(["--asym.beta_pos", "0.5"])
    assert settings.estimator == "asym_grpo" and settings.options.beta_pos == 0.5
    assert settings.loss_agg == "token_mean" and settings.entropy_adv_alpha is None
    assert _parse(["--advantage_estimator", "dr_grpo"]).loss_agg == "seq_sum_constant"
    with pytest.raises(ValueError, match="^--loss_agg: dr_grpo's loss is Dr.GRPO's seq_sum_constant"):
        _parse(["--advantage_estimator", "dr_grpo", "--loss_agg", "token_mean"])
    with pytest.raises(
        ValueError, match="^--advantage_estimator: 'reinforce' is OpenRLHF's own.*reinforce_pm1"
    ):
        _parse(["--advantage_estimator", "reinforce"])
    pm1 = _parse(["--advantage_estimator", "reinforce_pm1"])
    assert get_estimator(pm1.estimator).resolve(pm1.options).beta_pos == 0.0
