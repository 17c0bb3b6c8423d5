"""``asym-rl lite``'s settings: its flags (the estimator's, token control's and Entropy Advantage's come from their
one declaration in ``algorithms/``, through ``cli/flags.py``), their validation, and ``Settings``, the resolved
configuration a run records and a resume compares."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import torch
from asym_eval.files import check_model_dir, check_output_dir

from asym_openrlhf.algorithms.advantages import (
    AdvantageOptions,
    get_estimator,
)
from asym_openrlhf.algorithms.losses import (
    AGGREGATIONS,
)
from asym_openrlhf.cli.flags import (
    add_entropy_advantage_flags,
    add_estimator_flags,
    add_token_control_flags,
    beta_controller_from_args,
    entropy_advantage_from_args,
    estimator_from_args,
    token_control_from_args,
)
from asym_openrlhf.lite.tiny import TIERS

CONTROLS = ("none", "negate", "shuffle")
# --task -> default response length: an answer with EOS fits (countdown: `\\boxed{(8-5)*8}` + EOS is 16 tokens).
DEFAULT_MAX_NEW_TOKENS = {"addition": 12, "countdown": 20, "math": 1024}
# --task -> default lr. Countdown's warm start is fragile: from it 60 steps at 1e-4 raised held-out accuracy
# 0.254 -> 0.336, 2e-4 left it flat and 5e-4 collapsed it (the first update lowered the correct rollouts' log-prob).
DEFAULT_LR = {"addition": 2e-4, "countdown": 1e-4, "math": 2e-4}
# Settings that may change when a run is resumed (everything else must match the saved run).
RESUMABLE_CHANGES = {"steps", "save_every", "output_dir", "threads"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Where the OpenRLHF launcher has a flag for the same setting, lite takes its name too (the second one
    # given to each flag below), so that those flags move between the two paths unchanged.
    add_estimator_flags(
        parser, estimator_flags=("--advantage_estimator", "--algo.advantage.estimator"), default="asym_grpo"
    )
    group = parser.add_argument_group("run")
    group.add_argument(
        "--quick",
        action="store_true",
        help="quick tier: the 0.13M-parameter model on one-digit addition, 40 steps by default (tests, smoke runs)",
    )
    group.add_argument(
        "--steps", type=int, default=None, help="RL steps (rollout batches); default 200, 40 with --quick"
    )
    group.add_argument(
        "--output_dir", default="outputs/lite", help="where metrics, checkpoints and the final policy go"
    )
    group.add_argument(
        "--seed",
        "--train.seed",
        dest="seed",
        type=int,
        default=0,
        help="seed of prompt order, sampling and mini-batch order",
    )
    group.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default cpu)")
    group.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; default 1: the tiny model's matrices gain nothing from more, and extra threads "
        "stall when other processes share the cores (measured 0.75 s vs 8 s a step on a loaded 2-core box)",
    )
    group.add_argument(
        "--eval_every",
        "--eval.steps",
        dest="eval_every",
        type=int,
        default=10,
        help="greedy held-out eval every N steps (and at 0 and the end)",
    )
    group.add_argument(
        "--save_every",
        "--ckpt.save_steps",
        dest="save_every",
        type=int,
        default=20,
        help="write a resumable checkpoint every N steps",
    )
    group = parser.add_argument_group("model and task")
    group.add_argument(
        "--model",
        "--actor.model_name_or_path",
        dest="model",
        default=None,
        metavar="DIR",
        help="a local HF causal-LM directory (model + tokenizer); default: the shipped warm-start checkpoint",
    )
    group.add_argument(
        "--task",
        choices=tuple(DEFAULT_MAX_NEW_TOKENS),
        default="addition",
        help="addition (default); countdown (reach a target from 3 numbers 1..9 with + - * / and parentheses: "
        "many correct expressions per prompt, its own warm-start checkpoint); or MATH train with the math grader",
    )
    group.add_argument(
        "--heldout_size",
        type=int,
        default=None,
        help="held-out prompts for eval/accuracy; default 256 (addition, countdown), 64 (math)",
    )
    group.add_argument(
        "--eval_sampled_prompts",
        type=int,
        default=64,
        help="held-out prompts (the first N) for eval/pass_at_1 and eval/pass_at_G: G samples each at the "
        "rollout temperature; 0 = off. Default 64 (about 1 s per eval on 2 cores, the default model)",
    )
    group.add_argument(
        "--pass_curve_samples",
        type=int,
        default=0,
        help="n samples per sampled held-out prompt at step 0 and the last step, for the pass@k curve "
        "(eval/pass_at_k for k = 1, 2, 4, ... up to n; exploration shows at large k); 0 = G there too "
        "(default). 64 adds about 5 s per run on 2 cores (countdown)",
    )
    group.add_argument(
        "--max_new_tokens",
        "--rollout.max_new_tokens",
        dest="max_new_tokens",
        type=int,
        default=None,
        help="response length limit; default 12 (addition), 20 (countdown), 1024 (math)",
    )
    group.add_argument(
        "--temperature",
        "--rollout.temperature",
        dest="temperature",
        type=float,
        default=1.0,
        help="sampling temperature of rollouts (> 0); default 1.0",
    )
    group.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32", help="model dtype (default float32)"
    )
    group.add_argument(
        "--grade_timeout_s", type=float, default=5.0, help="math grader time limit per response"
    )
    group = parser.add_argument_group("RL (paper symbols in SPEC §3)")
    group.add_argument(
        "--group_size",
        "--rollout.n_samples_per_prompt",
        dest="group_size",
        type=int,
        default=8,
        help="G, rollouts per prompt (>= 2); default 8",
    )
    group.add_argument(
        "--prompts_per_step",
        "--rollout.batch_size",
        dest="prompts_per_step",
        type=int,
        default=16,
        help="prompts per rollout batch; default 16",
    )
    group.add_argument(
        "--mini_batches",
        type=int,
        default=2,
        help="optimizer steps per rollout batch (off-policy when > 1); default 2",
    )
    group.add_argument(
        "--lr",
        "--actor.adam.lr",
        dest="lr",
        type=float,
        default=None,
        help="AdamW learning rate; default 2e-4 (1e-4 with --task countdown)",
    )
    group.add_argument(
        "--max_grad_norm",
        "--actor.max_norm",
        dest="max_grad_norm",
        type=float,
        default=1.0,
        help="gradient clipping norm (0 = off); default 1.0",
    )
    group.add_argument(
        "--eps_clip_low_high",
        "--actor.eps_clip_low_high",
        dest="eps_clip_low_high",
        type=float,
        nargs=2,
        default=(0.2, 0.2),
        metavar=("LOW", "HIGH"),
        help="ratio clip [1-eps_low, 1+eps_high] (Eq. 2); clip-higher (DAPO) is 0.2 0.28; default 0.2 0.2",
    )
    group.add_argument(
        "--loss_agg",
        choices=AGGREGATIONS,
        default=None,
        help="token_mean (DAPO, the paper's) or seq_sum_constant (Dr.GRPO: token sum / max_new_tokens); default: "
        "the estimator's own (seq_sum_constant for dr_grpo, token_mean for the others), as in the launcher",
    )
    group.add_argument(
        "--entropy_coef",
        "--actor.entropy_coef",
        dest="entropy_coef",
        type=float,
        default=0.0,
        help="entropy regularization c: loss - c*H (paper 0.001); default 0",
    )
    add_entropy_advantage_flags(group)
    add_token_control_flags(group)
    group.add_argument(
        "--control_advantages",
        choices=CONTROLS,
        default="none",
        help="sanity control, not a method: negate flips every advantage's sign (accuracy must fall), "
        "shuffle permutes advantages across rollouts (no signal)",
    )


@dataclass(frozen=True)
class Settings:
    """Validated settings of one run (what ``config.json`` records)."""

    estimator: str
    options: AdvantageOptions
    beta_control: dict | None  # entropy-targeted β: target, rate, adapt (and the start β), or None
    token_control: dict | None  # Clip-Cov / KL-Cov / top-entropy tokens (TokenControl's fields), or None
    tier: str
    model: str
    task: str
    steps: int
    output_dir: str
    seed: int
    device: str
    threads: int
    eval_every: int
    save_every: int
    heldout_size: int
    eval_sampled_prompts: int
    pass_curve_samples: int
    max_new_tokens: int
    temperature: float
    dtype: str
    grade_timeout_s: float
    group_size: int
    prompts_per_step: int
    mini_batches: int
    lr: float
    max_grad_norm: float
    eps_low: float
    eps_high: float
    loss_agg: str
    entropy_coef: float
    entropy_adv_alpha: float | None  # None: Entropy Advantage off
    entropy_adv_kappa: float
    control_advantages: str

    def to_json(self) -> dict:
        record = dict(self.__dict__)
        record["options"] = dict(self.options.__dict__)
        return record


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Validate the flags; a bad value raises ``ValueError`` with one line naming its flag."""
    name, options = estimator_from_args(
        args, args.group_size, "--group_size (--rollout.n_samples_per_prompt)"
    )
    if args.quick and args.task == "countdown":
        raise ValueError(
            "--quick: the quick tier is one-digit addition only; drop --quick for --task countdown"
        )
    tier = TIERS["countdown" if args.task == "countdown" else "quick" if args.quick else "default"]
    lr = DEFAULT_LR[args.task] if args.lr is None else args.lr
    checks = [
        ("--steps", args.steps is None or args.steps >= 1, "must be >= 1"),
        ("--eval_every", args.eval_every >= 1, "must be >= 1"),
        ("--save_every", args.save_every >= 1, "must be >= 1"),
        ("--prompts_per_step", args.prompts_per_step >= 1, "must be >= 1"),
        ("--mini_batches", args.mini_batches >= 1, "must be >= 1"),
        (
            "--mini_batches",
            args.mini_batches <= args.prompts_per_step * args.group_size,
            "must be <= prompts_per_step * group_size",
        ),
        ("--lr", math.isfinite(lr) and lr > 0, "must be a positive number"),
        ("--max_grad_norm", args.max_grad_norm >= 0, "must be >= 0"),
        (
            "--eps_clip_low_high",
            0 <= args.eps_clip_low_high[0] < 1 and args.eps_clip_low_high[1] >= 0,
            "needs 0 <= LOW < 1 and HIGH >= 0",
        ),
        ("--temperature", args.temperature > 0, "must be > 0 (eval is greedy anyway)"),
        ("--entropy_coef", args.entropy_coef >= 0, "must be >= 0"),
        ("--max_new_tokens", args.max_new_tokens is None or args.max_new_tokens >= 1, "must be >= 1"),
        ("--heldout_size", args.heldout_size is None or args.heldout_size >= 1, "must be >= 1"),
        ("--eval_sampled_prompts", args.eval_sampled_prompts >= 0, "must be >= 0"),
        ("--pass_curve_samples", args.pass_curve_samples >= 0, "must be >= 0"),
        ("--threads", args.threads >= 1, "must be >= 1"),
        (
            "--grade_timeout_s",
            math.isfinite(args.grade_timeout_s) and args.grade_timeout_s > 0,
            "must be a finite number > 0",
        ),
    ]
    for flag, ok, message in checks:
        if not ok:
            raise ValueError(f"{flag}: {message}")
    if args.model is not None:
        check_model_dir(args.model, "--model")
    elif args.task == "math":
        # The shipped checkpoints are 64-position character models for addition/countdown: on MATH they would
        # run 1,024-token rollouts past their context and learn nothing.
        raise ValueError(
            "--task math: needs --model DIR (a local HF causal LM); the shipped tiny models only know "
            "addition and countdown"
        )
    check_output_dir(args.output_dir, "--output_dir")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {args.device} requested but CUDA is not available")
    is_math = args.task == "math"
    controller = beta_controller_from_args(args, name, options)
    token_control = token_control_from_args(args)
    entropy_adv = entropy_advantage_from_args(args)
    # The estimator's own loss aggregation, as the launcher derives it (Dr.GRPO: token sum / constant).
    loss_agg = args.loss_agg or get_estimator(name).loss_aggregation
    if loss_agg != get_estimator(name).loss_aggregation == "seq_sum_constant":
        raise ValueError(f"--loss_agg: {name}'s loss is Dr.GRPO's seq_sum_constant; leave --loss_agg unset")
    return Settings(
        estimator=name,
        options=options,
        beta_control=None if controller is None else controller.__dict__.copy(),
        token_control=None if token_control is None else dict(token_control.__dict__),
        tier=tier.name,
        model=str(args.model or tier.checkpoint_dir),
        task=args.task,
        steps=args.steps or (40 if args.quick else 200),
        output_dir=args.output_dir,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        eval_every=args.eval_every,
        save_every=args.save_every,
        heldout_size=args.heldout_size or (64 if is_math else tier.heldout_size),
        eval_sampled_prompts=args.eval_sampled_prompts,
        pass_curve_samples=args.pass_curve_samples,
        max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[args.task],
        temperature=args.temperature,
        dtype=args.dtype,
        grade_timeout_s=args.grade_timeout_s,
        group_size=args.group_size,
        prompts_per_step=args.prompts_per_step,
        mini_batches=args.mini_batches,
        lr=lr,
        max_grad_norm=args.max_grad_norm,
        eps_low=args.eps_clip_low_high[0],
        eps_high=args.eps_clip_low_high[1],
        loss_agg=loss_agg,
        entropy_coef=args.entropy_coef,
        entropy_adv_alpha=entropy_adv.alpha,
        entropy_adv_kappa=entropy_adv.kappa,
        control_advantages=args.control_advantages,
    )


def default_settings(**overrides) -> Settings:
    """Settings as the command line would give them, with ``overrides`` (flag dests) applied: for the study,
    benchmarks and tests, which build runs without a shell."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    for key, value in overrides.items():
        if not hasattr(args, key):
            raise ValueError(f"unknown setting {key!r}")
        setattr(args, key, value)
    return settings_from_args(args)
