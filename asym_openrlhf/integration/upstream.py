"""Every OpenRLHF 0.11.2 name this project uses, imported in one place.

An upgrade of OpenRLHF is checked against this list (and ``docs/train_on_gpus.md``): 0.11.0 -> 0.11.2 already
changed ``PolicyLoss``'s constructor and made its ``forward`` return a 5-tuple. Importing this module needs
vLLM and flash-attn importable: a GPU install, or on a CPU the real vLLM CPU build with the placeholder for
flash-attn's compiled kernels (``kernel_placeholder.install``).

Members and behaviour relied on, beyond the names imported below:
  * ``openrlhf.cli.train_ppo_ray``: builds its parser under ``__main__``, imports ``hierarchize`` from
    ``openrlhf.utils.config`` inside that block, ``PolicyModelActor`` at module level, and ``PPOTrainer`` from
    ``openrlhf.trainer.ppo_trainer`` inside ``train()``, whose first statement is ``ray.is_initialized()``;
  * ``PPOTrainer``: ``experience_maker`` (built in ``BasePPOTrainer.__init__`` from ``actor_model_group``,
    ``critic_model_group``, ``reward_model_group``, ``reference_model_group``, ``kl_ctl``, ``strategy``,
    ``tokenizer``), ``_compute_rollout_stats(experiences)``, ``ppo_train(global_steps)``;
  * ``SamplesGenerator``: ``generate_samples(**kw) -> (samples, pass_rate, prompts_consumed, exhausted)``,
    its ``_sample_buffer`` and ``args``; the trainer's ``samples_generator``, ``prompts_dataloader``,
    ``eval_dataloader`` and ``vllm_engines`` attributes, from which ours is rebuilt;
  * ``RemoteExperienceMaker``: ``make_experience_batch``, ``compute_advantages_and_returns``, and the
    helpers ``_dispatch_forward`` / ``_flatten_results`` (one extra actor forward);
  * ``PolicyModelActor.init_model_from_pretrained`` leaves an ``ActorPPOTrainer`` in ``self.trainer`` with
    ``actor_loss_fn``, ``training_step`` (returns ``{"metrics", "weights", ...}``; ``ppo_train`` weights a
    "token" metric by the micro-batch's action tokens) and ``actor``, an ``Actor`` whose ``forward`` takes
    ``sequences, action_mask, attention_mask, ..., ring_attn_group`` and ``packing_samples``, divides the logits
    by the temperature in place, and in training returns ``(log_probs, output)`` (``output.entropy`` when
    ``--actor.entropy_coef`` is set);
  * ``PPOTrainer`` also: ``save_logs_and_checkpoints``, ``save_best_checkpoint``, ``best_eval_metric_value``,
    ``fit``; ``PolicyModelActor.save_checkpoint`` writes ``<ckpt.path>/<tag>_hf``; ``train()`` saves the final
    model to ``--ckpt.output_dir`` after ``fit`` returns (``tests/test_checkpoints.py`` pins these);
  * ``Experience``: ``index``, ``scores``, ``action_mask``, ``action_log_probs``, ``advantages``, ``returns``,
    ``info`` ((B,) tensors are logged as ``train/<key>``);
  * the reward file API of ``--reward.remote_url`` (``openrlhf.utils.agent.SingleTurnAgentExecutor``).
"""

from __future__ import annotations

import importlib.metadata

import openrlhf.trainer.ppo_trainer as ppo_trainer_module
import openrlhf.trainer.ray.ppo_actor as ppo_actor_module
import openrlhf.utils.config as config_module
from openrlhf.models import PolicyLoss
from openrlhf.models import aggregate_loss as upstream_aggregate_loss

# Actor.forward's own packed-sample layout helpers (--ds.packing_samples): the entropy hook reuses them.
from openrlhf.models.ring_attn_utils import gather_and_pad_tensor, unpad_and_slice_tensor
from openrlhf.trainer.ppo_utils.experience import Experience
from openrlhf.trainer.ppo_utils.experience_maker import RemoteExperienceMaker
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

EXPECTED_VERSION = "0.11.2"
# The launcher module whose parser we reuse (it builds the parser under ``if __name__ == "__main__"``).
LAUNCHER_MODULE = "openrlhf.cli.train_ppo_ray"
# Its --algo.advantage.estimator choices: these names keep their upstream meaning.
UPSTREAM_ESTIMATORS = (
    "gae",
    "reinforce",
    "rloo",
    "reinforce_baseline",
    "group_norm",
    "dr_grpo",
    "flash_reinforce",
)

# Ray actor classes cannot be subclassed; ``__ray_actor_class__`` is the plain class under the decorator.
PPOTrainer = ppo_trainer_module.PPOTrainer.__ray_actor_class__
PolicyModelActor = ppo_actor_module.PolicyModelActor.__ray_actor_class__
ActorPPOTrainer = ppo_actor_module.ActorPPOTrainer
# The resources upstream asks Ray for (PolicyModelActor: one GPU); our subclasses ask for the same.
PPO_TRAINER_OPTIONS = dict(ppo_trainer_module.PPOTrainer._default_options)
POLICY_ACTOR_OPTIONS = dict(ppo_actor_module.PolicyModelActor._default_options)

__all__ = [
    "ActorPPOTrainer",
    "Experience",
    "PolicyLoss",
    "PolicyModelActor",
    "PPOTrainer",
    "RemoteExperienceMaker",
    "SamplesGenerator",
    "gather_and_pad_tensor",
    "unpad_and_slice_tensor",
    "upstream_aggregate_loss",
    "config_module",
    "ppo_actor_module",
    "ppo_trainer_module",
]


def check_version() -> None:
    installed = importlib.metadata.version("openrlhf")
    if installed != EXPECTED_VERSION:
        raise ValueError(
            f"openrlhf {installed} is installed; this project needs exactly {EXPECTED_VERSION} "
            f"(pip install openrlhf=={EXPECTED_VERSION})"
        )
