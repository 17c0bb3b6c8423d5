"""What this project's launcher flags resolve to (``args.asym``), validated against OpenRLHF's configuration.

``train_ppo_ray`` parses the flags; this module decides what they mean and refuses, in one line naming the flag
and before Ray starts, what would otherwise fail or mislead deep inside a run: estimator options that do not
apply, a reward that is not binary, rollout batches that split unevenly over the ranks (a hang), loss variants
our loss path does not implement.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, fields
from types import SimpleNamespace

from asym_eval.options import declared, dest_of

from asym_openrlhf.algorithms.advantages import OPENRLHF_ONLY, AdvantageOptions, get_estimator
from asym_openrlhf.algorithms.control import BetaController
from asym_openrlhf.cli.flags import (
    beta_controller_from_args,
    entropy_advantage_from_args,
    estimator_from_args,
    token_control_from_args,
)

# Our estimator options, argparse destination -> the flag, from their declarations.
OUR_OPTION_FLAGS = {
    dest_of(f): f.metadata["flag"] for cls in (AdvantageOptions, BetaController) for f in declared(cls)
}


def _refuse(flag: str, message: str):
    raise ValueError(f"{flag}: {message}")


def resolve_settings(ours: argparse.Namespace, args) -> SimpleNamespace:
    """Validate our flags against the upstream configuration ``args``; return ``args.asym``.

    An explicit ``--actor.entropy_coef 0`` becomes None (unset): 0 adds no bonus, and would only make upstream
    keep a (tokens x vocabulary) tensor alive through backward.
    """
    name = ours.advantage_estimator
    ours_estimator = name not in OPENRLHF_ONLY
    entropy_adv = entropy_advantage_from_args(ours)
    # args.asym: the estimator's options flat (every AdvantageOptions field, None for upstream's estimators).
    settings = SimpleNamespace(
        estimator=None,
        **{f.name: None for f in fields(AdvantageOptions)},
        beta_control=None,
        entropy_adv_alpha=entropy_adv.alpha,
        entropy_adv_kappa=entropy_adv.kappa,
        loss_aggregation=get_estimator(name).loss_aggregation if ours_estimator else "token_mean",
        log_pos_logprob_gain=ours.log_pos_logprob_gain,
        check_weight_sync=ours.check_weight_sync,  # the tolerance, or None: off
    )
    if args.train.async_enable:
        _refuse(
            "--train.async_enable",
            "not supported: the async trainer is built in another process, without this project's "
            "estimators, losses or metrics",
        )

    if not ours_estimator:
        for dest, flag in OUR_OPTION_FLAGS.items():
            if getattr(ours, dest) is not None:
                _refuse(flag, f"only applies to this project's estimators; {name!r} is OpenRLHF's own")
        if name == "reinforce":
            print(
                "[asym] warning: --advantage_estimator reinforce is OpenRLHF's (raw reward whitened over the "
                "batch), not the paper's +1/-1 REINFORCE: use --advantage_estimator reinforce_pm1 for that",
                file=sys.stderr,
            )
    else:
        name, options = estimator_from_args(
            ours,
            group_size=args.rollout.n_samples_per_prompt,
            group_size_flag="--rollout.n_samples_per_prompt",
        )
        options = get_estimator(name).resolve(options)  # presets' fixed values, for the record
        settings.estimator = name
        vars(settings).update(asdict(options))
        controller = beta_controller_from_args(ours, name, options)
        settings.beta_control = None if controller is None else controller.__dict__.copy()
        if args.algo.kl.init_coef > 0 and not args.algo.kl.use_loss:
            _refuse(
                "--algo.kl.init_coef",
                f"is {args.algo.kl.init_coef:g} (OpenRLHF's default is 0.01): a KL term in the reward would "
                f"change {name}'s advantages; the paper uses none. Pass --algo.kl.init_coef 0 "
                "(or --algo.kl.use_loss to put KL in the loss instead)",
            )
        for flag, value in (
            ("--reward.overlong_buffer_len", args.reward.overlong_buffer_len),
            ("--reward.stop_properly_penalty_coef", args.reward.stop_properly_penalty_coef),
        ):
            if value is not None:
                _refuse(
                    flag, f"shapes the reward, but {name} reads only the binary score: it would be ignored"
                )
        if not args.reward.remote_url and not args.train.agent_func_path:
            _refuse(
                "--reward.remote_url",
                f"{name} needs binary scores from a reward function: pass "
                "--reward.remote_url asym_openrlhf/reward/math_reward.py",
            )

    if args.actor.entropy_coef == 0:
        # 0 adds no bonus: upstream would only compute the entropy under grad, keeping a (tokens x vocabulary)
        # tensor per micro-batch alive through backward, and log it loss-normalised. Our policy actor logs
        # actor/entropy and feeds Entropy Advantage from a no-grad pass over the logits regardless.
        args.actor.entropy_coef = None
        print(
            "[asym] --actor.entropy_coef 0 is treated as unset: no bonus either way, and actor/entropy is "
            "logged without it",
            file=sys.stderr,
        )

    check_batch_split(args)
    if ours.cpu_backend:
        from asym_openrlhf.integration.cpu_backend import check_args

        check_args(args)
    if settings.check_weight_sync is not None and not settings.check_weight_sync > 0:
        _refuse("--asym.check_weight_sync", f"the tolerance must be > 0, got {settings.check_weight_sync}")
    if settings.check_weight_sync is not None and not args.vllm.num_engines:
        _refuse("--asym.check_weight_sync", "needs vLLM engines (--vllm.num_engines >= 1)")

    control = token_control_from_args(ours)
    settings.token_control = None if control is None else dict(control.__dict__)
    if control is not None:
        _refuse_other_losses(args, "with --cov.mode / --top_entropy.rho (their loss is PPO's clip)")

    if settings.loss_aggregation == "seq_sum_constant":
        if not args.rollout.max_new_tokens:
            _refuse("--rollout.max_new_tokens", "Dr.GRPO divides each sequence's loss sum by it: set it")
        _refuse_other_losses(args, "with dr_grpo, whose loss aggregation is Dr.GRPO's sum / constant")
    return settings


def data_parallel_ranks(args) -> int:
    """Policy ranks that hold different data: ring-attention and tensor-parallel groups share theirs."""
    return (
        args.actor.num_nodes
        * args.actor.num_gpus_per_node
        // args.ds.ring_attn_size
        // args.ds.tensor_parallel_size
    )


def check_batch_split(args) -> None:
    """Refuse rollout and training batches that split unevenly over the policy's data-parallel ranks.

    Upstream cuts a rollout batch (``--rollout.batch_size`` x ``--rollout.n_samples_per_prompt`` samples) into
    chunks of ``--rollout.micro_batch_size`` and deals each rank ceil(chunks / ranks) of them
    (trainer/ray/launcher.py l.354-371); it only checks that there are at least as many chunks as ranks. Ranks
    that hold different numbers of micro-batches then wait for each other forever in ``ppo_train``'s
    per-micro-batch all-reduce (trainer/ray/ppo_actor.py l.212). A rollout batch that is not a whole number of
    optimizer batches (``--train.batch_size``) ends with a short gradient-accumulation window, whose gradient
    gets the wrong scale without a word (utils/loss_utils.py l.102-105).
    """
    if args.train.dynamic_batch_enable:
        return  # upstream balances the batch over the ranks by tokens (balance_experiences)
    ranks = data_parallel_ranks(args)
    rollout, train = args.rollout, args.train
    samples = rollout.batch_size * rollout.n_samples_per_prompt
    per_step = f"--rollout.batch_size {rollout.batch_size} x --rollout.n_samples_per_prompt {rollout.n_samples_per_prompt} = {samples} samples"
    if samples % (rollout.micro_batch_size * ranks):
        _refuse(
            "--rollout.micro_batch_size",
            f"{per_step} do not split evenly into micro-batches of {rollout.micro_batch_size} over {ranks} "
            f"data-parallel policy ranks (--actor.num_gpus_per_node x --actor.num_nodes): ranks would hold "
            f"different numbers of micro-batches and wait for each other forever. Make the samples a multiple of "
            f"{rollout.micro_batch_size * ranks}",
        )
    if samples % train.batch_size:
        _refuse(
            "--train.batch_size",
            f"{per_step} are not a whole number of optimizer batches of {train.batch_size}: the last "
            "gradient-accumulation window would be short and its gradient silently mis-scaled",
        )
    if train.batch_size % (train.micro_batch_size * ranks):
        _refuse(
            "--train.micro_batch_size",
            f"--train.batch_size {train.batch_size} is not a multiple of --train.micro_batch_size "
            f"{train.micro_batch_size} x {ranks} data-parallel ranks",
        )


def check_prompt_count(args) -> None:
    """Refuse a missing local prompt file, or one with fewer prompts than one rollout batch (nothing would train).

    Only local JSON Lines files are counted; a dataset from a hub or in another format is left to upstream.
    """
    from pathlib import Path

    dataset = args.data.prompt_dataset
    if not dataset or "," in dataset:
        return  # a blend of several datasets (--data.prompt_probs): left to upstream
    path = Path(dataset)
    if path.suffix in (".jsonl", ".json") and not path.exists():
        _refuse("--data.prompt_dataset", f"no such file: {dataset}")
    if path.suffix != ".jsonl" or not path.is_file():
        return
    with path.open("rb") as handle:
        count = sum(1 for line in handle if line.strip())
    count = min(count, args.data.max_samples)
    if count < args.rollout.batch_size:
        _refuse(
            "--data.prompt_dataset",
            f"{dataset} holds {count} prompts, fewer than one rollout batch (--rollout.batch_size "
            f"{args.rollout.batch_size}): no step would train",
        )


def _refuse_other_losses(args, why: str) -> None:
    """Our own loss path (asym_openrlhf.algorithms.losses.controlled_token_loss) is PPO's clipped surrogate
    with token-level aggregation: refuse the upstream loss variants it does not implement."""
    for flag, unsupported in (
        ("--actor.dual_clip", args.actor.dual_clip is not None),
        ("--algo.advantage.is_correction_level", args.algo.advantage.is_correction_level != "off"),
        ("--actor.policy_loss_type", args.actor.policy_loss_type != "ppo"),
        ("--actor.loss_agg_mode", args.actor.loss_agg_mode != "token-mean"),
    ):
        if unsupported:
            _refuse(flag, f"not supported {why}")
