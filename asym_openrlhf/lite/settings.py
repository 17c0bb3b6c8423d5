"""``asym-rl lite``'s settings: its flags (the estimator's, token control's and Entropy Advantage's come from their
one declaration in ``algorithms/``, through ``cli/flags.py``), their validation, and ``Settings``, the resolved
configuration a run records and a resume compares."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from asym_eval.files import check_model_dir, check_output_dir
from asym_eval.options import add_flags, from_args, in_range, option, optional

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


def _clip_range(value) -> str | None:
    low, high = value
    return None if 0 <= low < 1 and high >= 0 else f"needs 0 <= LOW < 1 and HIGH >= 0, got {low:g} {high:g}"


_POSITIVE_INTEGER = in_range(1, integer=True)
_COUNT = in_range(0, integer=True)


@dataclass(frozen=True)
class RunOptions:
    """Every flag of ``asym-rl lite`` beyond the estimator's, token control's and Entropy Advantage's (declared
    with their dataclasses in ``algorithms/``), one field each. Where the OpenRLHF launcher has a flag for the
    same setting, lite also takes that spelling (``aliases``), so flags move between the two paths unchanged.
    ``None`` defaults are resolved by ``--task`` / ``--quick`` in ``settings_from_args``."""

    quick: bool = option(
        False, "--quick", "quick tier: the 0.13M-parameter model on one-digit addition, 40 steps by default "
        "(tests, smoke runs).", action="store_true",
    )  # fmt: skip
    steps: int | None = option(
        None, "--steps", "RL steps (rollout batches); default 200, 40 with --quick.", check=optional(_POSITIVE_INTEGER),
        type=int, show_default=False,
    )  # fmt: skip
    output_dir: str = option(
        "outputs/lite", "--output_dir", "where metrics, checkpoints and the final policy go."
    )
    seed: int = option(
        0, "--seed", "seed of prompt order, sampling and mini-batch order.", aliases=("--train.seed",)
    )
    device: str = option("cpu", "--device", "torch device, e.g. cpu or cuda.")
    threads: int = option(
        1, "--threads", "torch CPU threads; 1: the tiny model's matrices gain nothing from more, and extra threads "
        "stall when other processes share the cores (measured 0.75 s vs 8 s a step on a loaded 2-core box).",
        check=_POSITIVE_INTEGER,
    )  # fmt: skip
    eval_every: int = option(
        10, "--eval_every", "greedy held-out eval every N steps (and at 0 and the end).", aliases=("--eval.steps",),
        check=_POSITIVE_INTEGER,
    )  # fmt: skip
    save_every: int = option(
        20, "--save_every", "write a resumable checkpoint every N steps.", aliases=("--ckpt.save_steps",),
        check=_POSITIVE_INTEGER,
    )  # fmt: skip
    model: str | None = option(
        None, "--model", "a local HF causal-LM directory (model + tokenizer); default: the shipped warm-start "
        "checkpoint.", aliases=("--actor.model_name_or_path",), metavar="DIR", show_default=False,
    )  # fmt: skip
    task: str = option(
        "addition", "--task", "addition (one correct answer a prompt); countdown (reach a target from 3 numbers "
        "1..9 with + - * / and parentheses: many correct expressions per prompt, its own warm-start checkpoint); "
        "or MATH train with the math grader.", choices=tuple(DEFAULT_MAX_NEW_TOKENS),
    )  # fmt: skip
    heldout_size: int | None = option(
        None, "--heldout_size", "held-out prompts for eval/accuracy; default 256 (addition, countdown), 64 (math).",
        check=optional(_POSITIVE_INTEGER), type=int, show_default=False,
    )  # fmt: skip
    eval_sampled_prompts: int = option(
        64, "--eval_sampled_prompts", "held-out prompts (the first N) for eval/pass_at_1 and eval/pass_at_G: G "
        "samples each at the rollout temperature; 0 = off (64: about 1 s per eval on 2 cores, the default model).",
        check=_COUNT,
    )  # fmt: skip
    pass_curve_samples: int = option(
        0, "--pass_curve_samples", "n samples per sampled held-out prompt at step 0 and the last step, for the "
        "pass@k curve (eval/pass_at_k for k = 1, 2, 4, ... up to n; exploration shows at large k); 0 = G there "
        "too. 64 adds about 5 s per run on 2 cores (countdown).", check=_COUNT,
    )  # fmt: skip
    max_new_tokens: int | None = option(
        None, "--max_new_tokens", "response length limit; default 12 (addition), 20 (countdown), 1024 (math).",
        aliases=("--rollout.max_new_tokens",), check=optional(_POSITIVE_INTEGER), type=int, show_default=False,
    )  # fmt: skip
    temperature: float = option(
        1.0, "--temperature", "sampling temperature of rollouts (> 0; eval is greedy).",
        aliases=("--rollout.temperature",), check=in_range(0, low_open=True),
    )  # fmt: skip
    dtype: str = option("float32", "--dtype", "model dtype.", choices=("float32", "bfloat16"))
    grade_timeout_s: float = option(
        5.0, "--grade_timeout_s", "math grader time limit per response (s).", check=in_range(0, low_open=True)
    )
    group_size: int = option(
        8, "--group_size", "G, rollouts per prompt (>= 2 for a group-relative estimator).",
        aliases=("--rollout.n_samples_per_prompt",), check=_POSITIVE_INTEGER,
    )  # fmt: skip
    prompts_per_step: int = option(
        16, "--prompts_per_step", "prompts per rollout batch.", aliases=("--rollout.batch_size",),
        check=_POSITIVE_INTEGER,
    )  # fmt: skip
    mini_batches: int = option(
        2,
        "--mini_batches",
        "optimizer steps per rollout batch (off-policy when > 1).",
        check=_POSITIVE_INTEGER,
    )
    lr: float | None = option(
        None, "--lr", "AdamW learning rate; default 2e-4 (1e-4 with --task countdown).", aliases=("--actor.adam.lr",),
        check=optional(in_range(0, low_open=True)), type=float, show_default=False,
    )  # fmt: skip
    max_grad_norm: float = option(
        1.0,
        "--max_grad_norm",
        "gradient clipping norm (0 = off).",
        aliases=("--actor.max_norm",),
        check=in_range(0),
    )
    eps_clip_low_high: tuple = option(
        (0.2, 0.2), "--eps_clip_low_high", "ratio clip [1-eps_low, 1+eps_high] (Eq. 2); clip-higher (DAPO) is "
        "0.2 0.28.", aliases=("--actor.eps_clip_low_high",), check=_clip_range, type=float, nargs=2,
        metavar=("LOW", "HIGH"),
    )  # fmt: skip
    loss_agg: str | None = option(
        None, "--loss_agg", "token_mean (DAPO, the paper's) or seq_sum_constant (Dr.GRPO: token sum / "
        "max_new_tokens); default: the estimator's own (seq_sum_constant for dr_grpo, token_mean for the others), "
        "as in the launcher.", choices=AGGREGATIONS, show_default=False,
    )  # fmt: skip
    entropy_coef: float = option(
        0.0, "--entropy_coef", "entropy regularization c: loss - c·H (paper 0.001).",
        aliases=("--actor.entropy_coef",), check=in_range(0),
    )  # fmt: skip
    control_advantages: str = option(
        "none", "--control_advantages", "sanity control, not a method: negate flips every advantage's sign "
        "(accuracy must fall), shuffle permutes advantages across rollouts (no signal).", choices=CONTROLS,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_estimator_flags(
        parser, estimator_flags=("--advantage_estimator", "--algo.advantage.estimator"), default="asym_grpo"
    )
    group = parser.add_argument_group("run, task and RL (paper symbols in SPEC §3)")
    add_flags(group, RunOptions, defaults=True)
    add_entropy_advantage_flags(group)
    add_token_control_flags(group)


@dataclass(frozen=True)
class Settings(RunOptions):
    """Validated settings of one run (what ``config.json`` records): the flags of ``RunOptions``, with the
    defaults that depend on ``--task`` / ``--quick`` resolved, and the estimator's, the entropy controller's,
    token control's and Entropy Advantage's settings."""

    estimator: str = "asym_grpo"
    options: AdvantageOptions = field(default_factory=AdvantageOptions)
    beta_control: dict | None = None  # entropy-targeted β: target, rate, adapt (and the start β), or None
    token_control: dict | None = (
        None  # Clip-Cov / KL-Cov / top-entropy tokens (TokenControl's fields), or None
    )
    tier: str = "default"
    entropy_adv_alpha: float | None = None  # None: Entropy Advantage off
    entropy_adv_kappa: float = 2.0

    @property
    def eps_low(self) -> float:
        return self.eps_clip_low_high[0]

    @property
    def eps_high(self) -> float:
        return self.eps_clip_low_high[1]

    def to_json(self) -> dict:
        """Every field, as JSON has it (tuples become lists), so a saved run compares equal to its settings."""
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record["options"] = asdict(self.options)
        return json.loads(json.dumps(record))


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
    run_options = from_args(RunOptions, args)  # every declared range, one line naming the flag
    if run_options.mini_batches > args.prompts_per_step * args.group_size:
        raise ValueError("--mini_batches: must be <= prompts_per_step * group_size")
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
    resolved = replace(
        run_options,
        model=str(args.model or tier.checkpoint_dir),
        steps=args.steps or (40 if args.quick else 200),
        heldout_size=args.heldout_size or (64 if is_math else tier.heldout_size),
        max_new_tokens=args.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[args.task],
        lr=lr,
        loss_agg=loss_agg,
    )
    return Settings(
        **{f.name: getattr(resolved, f.name) for f in fields(RunOptions)},
        estimator=name,
        options=options,
        beta_control=None if controller is None else controller.__dict__.copy(),
        token_control=None if token_control is None else dict(token_control.__dict__),
        tier=tier.name,
        entropy_adv_alpha=entropy_adv.alpha,
        entropy_adv_kappa=entropy_adv.kappa,
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
