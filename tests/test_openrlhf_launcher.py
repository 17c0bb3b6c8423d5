"""The launcher: upstream's real parser, our flags, bad input refused in one line before Ray starts, and our
actor classes handed to upstream's ``train()``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import ray

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

import openrlhf.utils  # noqa: E402

from asym_openrlhf.cli import train_ppo_ray as launcher  # noqa: E402
from asym_openrlhf.integration import kernel_placeholder, upstream  # noqa: E402
from asym_openrlhf.integration.trainer import AsymPolicyModelRayActor, AsymPPOTrainerRayActor  # noqa: E402

GOOD = upstream_support.LAUNCH_ARGV


def with_flag(argv: list[str], flag: str, *values: str) -> list[str]:
    """``argv`` with ``flag`` set to ``values`` (replaced if present, removed if no values)."""
    out, skip = [], 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        if item == flag:
            skip = 1  # every flag in GOOD takes one value
            continue
        out.append(item)
    return out + ([flag, *values] if values else [])


BAD_INPUT = {
    "beta below 0": (
        GOOD + ["--advantage_estimator", "asym_grpo", "--asym.beta_pos", "-0.1"],
        "--asym.beta_pos",
    ),
    "unknown flip": (GOOD + ["--advantage_estimator", "asym_grpo", "--asym.flip", "sideways"], "--asym.flip"),
    "one sample per prompt": (
        with_flag(GOOD, "--rollout.n_samples_per_prompt", "1") + ["--advantage_estimator", "neg_only"],
        "--rollout.n_samples_per_prompt",
    ),
    "k above G": (GOOD + ["--advantage_estimator", "pass_at_k", "--pass_k.k", "9"], "--pass_k.k"),
    "KL in the reward (upstream default 0.01)": (
        with_flag(GOOD, "--algo.kl.init_coef") + ["--advantage_estimator", "asym_grpo"],
        "--algo.kl.init_coef",
    ),
    "async": (GOOD + ["--advantage_estimator", "asym_grpo", "--train.async_enable"], "--train.async_enable"),
    "unknown estimator": (GOOD + ["--advantage_estimator", "grpo_plus"], "--advantage_estimator"),
    "our option on an upstream estimator": (
        GOOD + ["--advantage_estimator", "group_norm", "--asym.beta_neg", "0.3"],
        "--asym.beta_neg",
    ),
    "preset overridden": (
        GOOD + ["--advantage_estimator", "pos_only", "--asym.beta_pos", "0.9"],
        "--asym.beta_pos",
    ),
    "Dr.GRPO without a length constant": (
        GOOD + ["--advantage_estimator", "dr_grpo"],
        "--rollout.max_new_tokens",
    ),
    "entropy kappa <= 1": (
        GOOD + ["--entropy_adv.alpha", "0.4", "--entropy_adv.kappa", "1"],
        "--entropy_adv.kappa",
    ),
    "shaped reward ignored": (
        GOOD + ["--advantage_estimator", "asym_grpo", "--reward.overlong_buffer_len", "512"],
        "--reward.overlong_buffer_len",
    ),
    # Upstream deals each of 2 ranks ceil(3 / 2) = 2 of 3 rollout micro-batches: the ranks would wait forever.
    "rollout batch split unevenly over ranks": (
        GOOD
        + [
            "--actor.num_gpus_per_node",
            "2",
            "--rollout.batch_size",
            "3",
            "--rollout.micro_batch_size",
            "8",
            "--train.batch_size",
            "8",
            "--train.micro_batch_size",
            "1",
        ],
        "--rollout.micro_batch_size",
    ),  # fmt: skip
    "rollout batch not whole optimizer batches": (
        GOOD + ["--actor.num_gpus_per_node", "1", "--rollout.batch_size", "4", "--train.batch_size", "12"],
        "--train.batch_size",
    ),
    "optimizer batch not split over ranks": (
        GOOD
        + [
            "--actor.num_gpus_per_node",
            "4",
            "--rollout.batch_size",
            "4",
            "--rollout.micro_batch_size",
            "8",
            "--train.batch_size",
            "8",
            "--train.micro_batch_size",
            "4",
        ],
        "--train.micro_batch_size",
    ),  # fmt: skip
    "no binary score": (
        with_flag(GOOD, "--reward.remote_url") + ["--advantage_estimator", "asym_grpo"],
        "--reward.remote_url",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUT, ids=list(BAD_INPUT))
def test_bad_input_is_one_line_naming_the_flag_before_ray_starts(case, capsys):
    argv, flag = BAD_INPUT[case]
    assert launcher.main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"{launcher.PROG}: error: {flag}:"), lines
    assert not ray.is_initialized()


@pytest.mark.parametrize(
    "typo, closest",
    [
        ("--asym.beta_poss", "--asym.beta_pos"),
        ("--rollout.n_sample_per_prompt", "--rollout.n_samples_per_prompt"),
    ],
)
def test_a_mistyped_flag_is_one_line_naming_the_closest(typo, closest, capsys):
    assert launcher.main(GOOD + [typo, "8", "--dry_run"]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip().splitlines()[-1]
        == f"{launcher.PROG}: error: {typo}: unknown flag; did you mean {closest}?"
    )
    assert "usage:" not in err  # not upstream's 190-line usage


SCRIPT_ALGO = ["--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0.9", "--asym.beta_neg", "0.4"]


@pytest.mark.parametrize(
    "last, dropped",
    [
        (["--advantage_estimator", "reinforce"], "--asym.beta_pos 0.9, --asym.beta_neg 0.4"),
        (["--advantage_estimator=pos_only"], "--asym.beta_pos 0.9, --asym.beta_neg 0.4"),  # both fixed by it
        (["--algo.advantage.estimator", "w_reinforce"], "--asym.beta_pos 0.9, --asym.beta_neg 0.4"),
    ],
)
def test_a_later_estimator_drops_the_options_before_it_that_do_not_apply(last, dropped, capsys):
    args = launcher.resolve_config(GOOD + SCRIPT_ALGO + last)
    name = last[-1].split("=")[-1]
    assert args.algo.advantage.estimator == name
    assert f"--advantage_estimator {name} is given last, so {dropped} given before it do not apply" in (
        capsys.readouterr().err
    )


def test_options_that_still_apply_or_come_after_the_last_estimator_are_kept():
    args = launcher.resolve_config(
        GOOD + SCRIPT_ALGO + ["--advantage_estimator", "asym_grpo", "--asym.flip", "neg"]
    )
    assert (args.asym.beta_pos, args.asym.beta_neg, args.asym.flip) == (0.9, 0.4, "neg")
    with pytest.raises(ValueError, match="^--asym.beta_neg: only applies"):
        launcher.resolve_config(
            GOOD + SCRIPT_ALGO + ["--advantage_estimator", "group_norm", "--asym.beta_neg", "1"]
        )


def test_upstream_reinforce_warns_that_it_is_not_the_papers(capsys):
    args = launcher.resolve_config(GOOD + ["--advantage_estimator", "reinforce"])
    assert args.algo.advantage.estimator == "reinforce" and args.asym.estimator is None
    assert "--advantage_estimator reinforce_pm1" in capsys.readouterr().err  # the paper's, by its own name


def test_estimator_also_accepted_under_upstreams_flag_name():
    args = launcher.resolve_config(
        GOOD + ["--algo.advantage.estimator", "asym_grpo", "--asym.beta_neg", "0.3"]
    )
    assert args.algo.advantage.estimator == args.asym.estimator == "asym_grpo"
    assert (args.asym.beta_pos, args.asym.beta_neg, args.asym.flip) == (0.9, 0.3, "none")
    assert args.critic.model_name_or_path is None  # upstream's own logic saw a non-gae estimator


def test_dry_run_prints_the_resolved_configuration_as_json(capsys):
    assert launcher.main(GOOD + ["--advantage_estimator", "ent_decrease", "--dry_run"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["asym"]["estimator"] == "ent_decrease"
    assert (config["asym"]["beta_pos"], config["asym"]["flip"]) == (0.5, "pos")  # the preset, resolved
    assert config["reward"]["remote_url"] == ["reward.py"]  # upstream's validation ran (it splits the list)
    assert config["eval"]["steps"] == -1 and config["ckpt"]["max_mem"] == "inf"


def test_every_flag_has_help_and_help_shows_both_parsers(capsys):
    for action in launcher.build_parser()._actions:
        assert action.help and len(action.help) > 20, action.option_strings
    with pytest.raises(SystemExit) as exit_info:
        launcher.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--asym.beta_pos" in out and "--entropy_adv.alpha" in out  # ours
    assert "--rollout.n_samples_per_prompt" in out and "--algo.kl.init_coef" in out  # upstream's


def test_a_real_launch_hands_our_actor_classes_to_upstream_train(monkeypatch, tmp_path):
    seen = {}
    prompts = tmp_path / "prompts.jsonl"  # a real launch counts the prompts first
    prompts.write_text('{"input": "1+1", "label": "2"}\n' * 1024)

    class Handed(Exception):
        pass

    def fake_get_strategy(args):
        # Called by upstream's train() after Ray would be up; the launcher module bound its actor class
        # when runpy executed it, and train() imports PPOTrainer from this module right after.
        seen["trainer"] = upstream.ppo_trainer_module.PPOTrainer
        seen["policy"] = upstream.ppo_actor_module.PolicyModelActor
        seen["args"] = args
        raise Handed

    monkeypatch.setattr(openrlhf.utils, "get_strategy", fake_get_strategy)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # so train() does not start Ray here
    argv = with_flag(GOOD, "--data.prompt_dataset", str(prompts))
    ours, upstream_argv = launcher.split_argv(argv + ["--advantage_estimator", "asym_grpo"])
    with pytest.raises(Handed):
        launcher.run_upstream(ours, upstream_argv, dry_run=False)
    assert seen["trainer"] is AsymPPOTrainerRayActor
    assert seen["policy"] is AsymPolicyModelRayActor
    assert seen["args"].asym.estimator == "asym_grpo"
    # and nothing stays patched afterwards
    assert upstream.ppo_trainer_module.PPOTrainer is not AsymPPOTrainerRayActor
    assert upstream.config_module.hierarchize.__name__ == "hierarchize"


def _launcher(*argv: str) -> subprocess.CompletedProcess:
    """The launcher in a fresh process, as a user runs it (no test set-up: nothing pre-installed)."""
    return subprocess.run(
        [sys.executable, "-m", "asym_openrlhf.cli.train_ppo_ray", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(
    kernel_placeholder.kernels_available(), reason="flash-attn's CUDA kernels are installed here"
)
@pytest.mark.slow  # two launcher subprocesses
def test_on_a_cpu_machine_a_dry_run_works_and_a_real_launch_refuses_in_one_line():
    dry = _launcher(*GOOD, "--advantage_estimator", "asym_grpo", "--dry_run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert json.loads(dry.stdout)["asym"]["estimator"] == "asym_grpo"  # the real parser ran
    assert "installed a CPU placeholder" in dry.stderr  # and the placeholder said so

    real = _launcher(*GOOD, "--advantage_estimator", "asym_grpo")
    assert real.returncode == 2
    errors = [line for line in real.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "flash_attn_2_cuda" in errors[0], real.stderr[-2000:]
    assert "Traceback" not in real.stderr


def test_a_prompt_set_smaller_than_one_rollout_batch_is_refused_before_ray(tmp_path, capsys):
    """A real CPU launch (--cpu_backend) counts the prompts before Ray starts: 3 prompts cannot fill a rollout
    batch of 4, and nothing would train."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"input": "1+1", "label": "2"}\n' * 3)
    argv = with_flag(GOOD, "--data.prompt_dataset", str(prompts)) + [
        "--cpu_backend", "--vllm.num_engines", "1", "--vllm.sync_backend", "gloo",
        "--ds.attn_implementation", "sdpa", "--actor.num_gpus_per_node", "1",
        "--rollout.batch_size", "4", "--train.batch_size", "8",
    ]  # fmt: skip
    assert launcher.main(argv) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith(f"{launcher.PROG}: error: --data.prompt_dataset: ") and "holds 3 prompts" in line
    assert not ray.is_initialized()
