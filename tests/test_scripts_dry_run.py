"""Every launch script passes its dry run, and its resolved configuration is SPEC §5 for its row.

Each script is run by bash for real, with ``ASYM_LAUNCHER`` set to print the command line it would run; that
command line is then resolved in this process by the launcher (OpenRLHF's real parser and checks), so the
OpenRLHF import is paid once. One script also goes the whole way, ``DRY_RUN=1 bash script`` -> JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from asym_openrlhf.cli.train_ppo_ray import resolve_config  # noqa: E402
from asym_openrlhf.integration import kernel_placeholder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "examples" / "scripts"

# SPEC §5, per model: prompts per rollout step, samples per optimizer step, max response tokens.
MODELS = {
    "qwen3-4b": dict(rollout_batch=128, train_batch=512, max_new_tokens=4096),
    "qwen2.5-math-1.5b": dict(rollout_batch=512, train_batch=1024, max_new_tokens=2560),
}
# What a row changes; every other row setting is the common default (no entropy bonus, clip 0.2/0.2, ...).
ASYM = "asym_grpo"
ROWS = {
    "qwen3-4b": {
        "reinforce": dict(estimator=ASYM, betas=(0.0, 0.0)),
        "grpo": dict(estimator="group_norm"),
        "grpo_entropy_reg": dict(estimator="group_norm", entropy_coef=0.001),
        "grpo_clip_higher": dict(estimator="group_norm", eps=(0.2, 0.28)),
        "grpo_entropy_adv": dict(estimator="group_norm", entropy_adv=(0.4, 2.0)),
        "dr_grpo": dict(estimator="dr_grpo", aggregation="seq_sum_constant"),
        "pass_at_k": dict(estimator="pass_at_k", k=5),
        "pos_only": dict(estimator="pos_only", betas=(0.5, 0.0)),
        "neg_only": dict(estimator="neg_only", betas=(0.0, 0.5)),
        "ent_increase": dict(estimator="ent_increase", betas=(0.5, 0.5), flip="neg"),
        "ent_decrease": dict(estimator="ent_decrease", betas=(0.5, 0.5), flip="pos"),
        "asymgrpo_symmetric": dict(estimator=ASYM, betas=(0.7, 0.7)),
        "asymgrpo": dict(estimator=ASYM, betas=(0.9, 0.4)),
        "asymgrpo_clip_higher": dict(estimator=ASYM, betas=(0.9, 0.3), eps=(0.2, 0.28)),
        # beyond Table 1
        "w_reinforce": dict(estimator="w_reinforce", betas=(0.0, 0.0), scales=(0.1, 1.0)),
        "grpo_clip_cov": dict(
            estimator="group_norm", token_control=dict(cov_mode="clip_cov", cov_ratio=2e-4)
        ),
        "grpo_kl_cov": dict(estimator="group_norm", token_control=dict(cov_mode="kl_cov", kl_cov_coef=1.0)),
        "asymgrpo_top_entropy": dict(
            estimator=ASYM, betas=(0.9, 0.4), token_control=dict(top_entropy_rho=0.2)
        ),
    },
    "qwen2.5-math-1.5b": {
        "reinforce": dict(estimator=ASYM, betas=(0.0, 0.0)),
        "reinforce_entropy_reg": dict(estimator=ASYM, betas=(0.0, 0.0), entropy_coef=0.001),
        "pos_only": dict(estimator="pos_only", betas=(0.5, 0.0)),
        "neg_only": dict(estimator="neg_only", betas=(0.0, 0.5)),
        "grpo": dict(estimator="group_norm"),
        "ent_increase": dict(estimator="ent_increase", betas=(0.5, 0.5), flip="neg"),
        "ent_decrease": dict(estimator="ent_decrease", betas=(0.5, 0.5), flip="pos"),
        "beta_p0_n0.25": dict(estimator=ASYM, betas=(0.0, 0.25)),
        "beta_p0_n0.75": dict(estimator=ASYM, betas=(0.0, 0.75)),
        "beta_p0.25_n0": dict(estimator=ASYM, betas=(0.25, 0.0)),
        "beta_p0.75_n0": dict(estimator=ASYM, betas=(0.75, 0.0)),
    },
}
# Every row runs through our registry (group_norm and dr_grpo included: one name, one algorithm in both
# trainers); none uses an OpenRLHF-only estimator.
UPSTREAM_NAMES = set()
CASES = [(model, row) for model, rows in ROWS.items() for row in rows]


def script_env(**extra) -> dict:
    env = {
        key: value for key, value in os.environ.items() if key not in ("MODEL_PATH", "DATA_DIR", "SAVE_DIR")
    }
    env.update(DRY_RUN="1", **extra)
    return env


def launcher_argv(script: Path) -> list[str]:
    """The launcher arguments ``script`` resolves to, printed NUL-separated instead of launched."""
    result = subprocess.run(
        ["bash", str(script)],
        env=script_env(ASYM_LAUNCHER="printf %s\\0"),
        capture_output=True,
        check=True,
        timeout=30,
    )
    argv = result.stdout.decode().split("\0")[:-1]
    assert argv[-1] == "--dry_run"
    return argv[:-1]


def test_the_script_set_is_exactly_the_rows():
    for model, rows in ROWS.items():
        found = {path.name for path in (SCRIPTS / model).glob("train_*.sh")}
        assert found == {f"train_{row}.sh" for row in rows}, model


@pytest.mark.parametrize("model,row", CASES, ids=[f"{m}/{r}" for m, r in CASES])
def test_script_resolves_to_spec_settings(model, row):
    args = resolve_config(launcher_argv(SCRIPTS / model / f"train_{row}.sh"))
    defaults = dict(entropy_coef=None, eps=(0.2, 0.2), entropy_adv=(None, 2.0), aggregation="token_mean")
    want = {**defaults, **ROWS[model][row]}

    # Common block: hybrid engine on 4 GPUs, G = 8, lr 2e-6, no KL, token-level loss, the math reward.
    assert (args.actor.num_nodes, args.actor.num_gpus_per_node, args.vllm.num_engines) == (1, 4, 4)
    assert args.train.colocate_all and args.vllm.enable_sleep and args.ds.enable_sleep
    assert args.rollout.n_samples_per_prompt == 8 and args.rollout.temperature == 1.0
    assert args.actor.adam.lr == 2e-6 and args.algo.kl.init_coef == 0 and not args.algo.kl.use_loss
    assert args.actor.loss_agg_mode == "token-mean"
    assert args.reward.remote_url[0].endswith("asym_openrlhf/reward/math_reward.py")
    assert Path(args.reward.remote_url[0]).is_file()
    assert (args.data.input_key, args.data.label_key, args.data.apply_chat_template) == (
        "prompt",
        "label",
        False,
    )
    assert (args.eval.steps, args.eval.temperature) == (10, 0.0)
    assert args.data.prompt_dataset.endswith(f"data/{model}/math_train.jsonl")

    # Model block (SPEC §5).
    spec = MODELS[model]
    assert args.rollout.batch_size == spec["rollout_batch"]
    assert args.train.batch_size == spec["train_batch"]
    assert args.rollout.max_new_tokens == spec["max_new_tokens"]
    assert args.data.max_len >= spec["max_new_tokens"] + 512  # room for the prompt

    # Row block.
    assert args.algo.advantage.estimator == want["estimator"]
    assert args.actor.entropy_coef == want["entropy_coef"]
    assert tuple(args.actor.eps_clip_low_high) == want["eps"]
    assert (args.asym.entropy_adv_alpha, args.asym.entropy_adv_kappa) == want["entropy_adv"]
    assert args.asym.loss_aggregation == want["aggregation"]
    for key, value in want.get("token_control", {}).items():
        assert args.asym.token_control[key] == value, key
    if "token_control" not in want:
        assert args.asym.token_control is None
    if "scales" in want:
        assert (args.asym.scale_pos, args.asym.scale_neg) == want["scales"]
    # Fig. 2 (d,h) is drawn from the Section 3 runs: they log the positive rollouts' log-prob gain.
    assert args.asym.log_pos_logprob_gain == (model == "qwen2.5-math-1.5b")
    if want["estimator"] in UPSTREAM_NAMES:
        assert args.asym.estimator is None
    else:
        assert args.asym.estimator == want["estimator"]
        if "betas" in want:
            assert (args.asym.beta_pos, args.asym.beta_neg) == want["betas"]
        assert args.asym.flip == want.get("flip", "none")
        if "k" in want:
            assert args.asym.k == want["k"]


def _user_env(**extra) -> dict:
    """A user's shell after the README's setup: no virtual environment active, no test hooks."""
    env = script_env(**extra)
    for key in ("ASYM_LAUNCHER", "VIRTUAL_ENV", "PYTHON"):
        env.pop(key, None)
    return env


@pytest.mark.slow  # runs a launch script in a subprocess
def test_dry_run_end_to_end_prints_json(tmp_path):
    """``DRY_RUN=1 bash script`` as a user runs it: the launcher in .venv's Python, the real OpenRLHF."""
    script = SCRIPTS / "qwen3-4b" / "train_asymgrpo.sh"
    env = _user_env(MODEL_PATH=str(tmp_path / "model"))
    if not (ROOT / ".venv" / "bin" / "python").exists():
        env["PYTHON"] = sys.executable  # a checkout whose environment lives elsewhere
    result = subprocess.run(
        ["bash", str(script), "--train.num_episodes", "2"],  # extra flags are appended and win
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads(result.stdout)
    assert config["asym"]["estimator"] == "asym_grpo"
    assert (config["asym"]["beta_pos"], config["asym"]["beta_neg"]) == (0.9, 0.4)
    assert config["actor"]["model_name_or_path"] == str(tmp_path / "model")
    assert config["train"]["num_episodes"] == 2
    if not kernel_placeholder.kernels_available():
        assert "installed a CPU placeholder" in result.stderr  # said so
    data_dir = ROOT / "data" / "qwen3-4b"
    if not (data_dir / "math_train.jsonl").exists():  # a checkout that has not prepared the data
        assert (
            f"[asym] warning: {data_dir}/math_train.jsonl does not exist; make it with: asym-rl prepare-data "
            f"--tokenizer {tmp_path / 'model'} --output_dir {data_dir}"
        ) in result.stderr

    # A bad value is refused in one line naming the flag, before Ray starts.
    bad = subprocess.run(
        ["bash", str(script), "--asym.beta_pos", "-1"], env=env, capture_output=True, text=True, timeout=180
    )
    assert bad.returncode == 2 and bad.stdout == ""
    errors = [line for line in bad.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--asym.beta_pos" in errors[0] and "Traceback" not in bad.stderr


def test_a_bad_value_in_a_script_fails_the_dry_run(tmp_path):
    script = SCRIPTS / "qwen3-4b" / "train_asymgrpo.sh"
    argv = launcher_argv(script) + ["--asym.beta_neg", "-1"]
    with pytest.raises(ValueError, match="--asym.beta_neg"):
        resolve_config(argv)


def test_scripts_are_valid_bash():
    for script in [SCRIPTS / "common.sh", *SCRIPTS.glob("*/*.sh")]:
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_flags_after_the_script_win_for_the_estimator_too(capsys):
    """The README's "flags after the script name win": the script's own --asym.beta_pos/--asym.beta_neg do not
    block a user's --advantage_estimator reinforce; they are dropped with a note."""
    script = SCRIPTS / "qwen3-4b" / "train_asymgrpo.sh"
    args = resolve_config(launcher_argv(script) + ["--advantage_estimator", "reinforce"])
    assert args.algo.advantage.estimator == "reinforce" and args.asym.estimator is None
    assert "--asym.beta_pos 0.9, --asym.beta_neg 0.4 given before it do not apply" in capsys.readouterr().err
