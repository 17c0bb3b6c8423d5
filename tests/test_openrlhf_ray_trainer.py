"""Our trainer built by upstream's ``PPOTrainer.__init__`` inside a real Ray actor on CPU, with our experience
maker in it: the path a GPU launch takes, minus the GPU actors (which Ray cannot place here)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import ray

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
import upstream_support  # noqa: E402

upstream_support.install()

from openrlhf.utils import get_strategy  # noqa: E402

from asym_openrlhf.cli.train_ppo_ray import resolve_config  # noqa: E402
from asym_openrlhf.integration.trainer import AsymPPOTrainerRayActor  # noqa: E402

pytestmark = pytest.mark.slow  # starts Ray


@pytest.fixture(scope="module")
def ray_cluster():
    assert not ray.is_initialized()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024 * 1024,
        log_to_driver=False,
        runtime_env={
            # Workers are fresh processes: they get the CPU stand-ins the same way this process did.
            "worker_process_setup_hook": "asym_openrlhf.integration.kernel_placeholder.install",
            "env_vars": {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
        },
    )
    yield
    ray.shutdown()


def test_trainer_actor_builds_with_our_experience_maker(ray_cluster, tmp_path):
    model = upstream_support.tiny_chat_tokenizer(tmp_path / "model")  # PPOTrainer loads only the tokenizer
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"<|user|>{a}+{a}?", "label": str(2 * a)} for a in range(6)]
    prompts.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    args = resolve_config(
        [
            "--advantage_estimator", "asym_grpo", "--asym.beta_pos", "0.9", "--asym.beta_neg", "0.4",
            "--rollout.n_samples_per_prompt", "4", "--rollout.batch_size", "2", "--train.batch_size", "8",
            "--algo.kl.init_coef", "0", "--reward.remote_url", "reward.py",
            "--actor.model_name_or_path", model, "--data.prompt_dataset", str(prompts),
            "--data.input_key", "prompt", "--data.label_key", "label",
            "--actor.num_gpus_per_node", "1",
        ]
    )  # fmt: skip
    strategy = get_strategy(args)
    trainer = AsymPPOTrainerRayActor.remote(model, strategy, None, None, None, None, None, max_len=64)

    def inspect(self):
        maker = self.experience_maker
        return type(self).__name__, type(maker).__name__, maker.args.asym.estimator, maker.args.asym.beta_neg

    # 6 prompts x 4 samples / 8 per optimizer step = 3 steps: upstream's dataset code ran in the actor.
    assert ray.get(trainer.get_max_steps.remote()) == 3
    assert ray.get(trainer.__ray_call__.remote(inspect)) == (
        "AsymPPOTrainer",
        "AsymExperienceMaker",
        "asym_grpo",
        0.4,
    )
    ray.kill(trainer)
