"""``asym-rl lite``: RL with verifiable rewards on one machine (CPU in minutes, or one GPU).

One step: sample G responses for each of P prompts, score them (binary reward), compute advantages with the
registry (``compute_advantages``), then take ``--mini_batches`` optimizer steps over the rollout batch with the
clipped surrogate and token-level aggregation. Every formula comes from ``asym_openrlhf.algorithms``.

Where it departs from the paper's setting (SPEC §5), on purpose: a tiny char-level model warm-started on
addition instead of a 1.5B/4B model on MATH (``--model``/``--task math`` bring those back), one process
instead of verl/OpenRLHF workers, and the old log-probs and entropies come from the sampler's own logits
(untempered), not from a second forward pass: equal to float rounding, and one forward cheaper per step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from asym_eval.files import check_model_dir, check_output_dir, write_atomic

from asym_openrlhf.algorithms.advantages import (
    AdvantageOptions,
    beta_metrics,
    compute_advantages,
    get_estimator,
)
from asym_openrlhf.algorithms.control import BetaController, options_at_step
from asym_openrlhf.algorithms.losses import (
    AGGREGATIONS,
    EntropyAdvantage,
    TokenControl,
    aggregate_loss,
    controlled_token_loss,
    entropy_regularized,
    entropy_shaped_advantages,
    masked_mean,
)
from asym_openrlhf.algorithms.metrics import (
    entropy_by_correctness,
    entropy_pos_neg,
    mean_token_entropy,
    positive_logprob_gain,
    rollout_metrics,
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
from asym_openrlhf.lite.rollout import decode_responses, generate, response_logprobs
from asym_openrlhf.lite.tasks import AdditionTask, CountdownTask, MathTask
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


class Trainer:
    """The policy, optimizer, task and RNG streams of one run, and one RL step."""

    def __init__(self, settings: Settings):
        self.settings = s = settings
        self.device = torch.device(s.device)
        if self.device.type == "cpu":
            # transformers imports DeepSpeed (where installed) to ask about ZeRO-3 when it saves, and DeepSpeed
            # then warns "Setting accelerator to CPU" once per process: say it is the CPU, so it stays quiet.
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        # One progress display per command (lite's bar, the study's): not transformers' load and save bars.
        transformers_logging.disable_progress_bar()
        if self.device.type == "cpu":
            torch.set_num_threads(s.threads)
        self.tokenizer = AutoTokenizer.from_pretrained(s.model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(s.model, dtype=getattr(torch, s.dtype)).to(
            self.device
        )
        if s.task == "addition":
            tier = TIERS[s.tier]
            self.task = AdditionTask(tier.max_digits, s.heldout_size)
        elif s.task == "countdown":
            self.task = CountdownTask(s.heldout_size)
        else:
            self.task = MathTask(self.tokenizer, s.heldout_size, timeout_s=s.grade_timeout_s)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=s.lr, weight_decay=0.0)
        # Two seeded streams: prompts and mini-batch order (CPU), token sampling (on the model's device).
        self.data_rng = torch.Generator().manual_seed(s.seed)
        self.sample_rng = torch.Generator(device=self.device).manual_seed(s.seed + 1)
        self.step_count = 0
        self._encode_cache: dict[str, list[int]] = {}
        self.beta_controller = None if s.beta_control is None else BetaController(**s.beta_control)

    def _encode(self, text: str) -> list[int]:
        if text not in self._encode_cache:
            self._encode_cache[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._encode_cache[text]

    def _rollouts(self, prompts: list[str], temperature: float, with_logprobs: bool = False, generator=None):
        self.model.eval()
        return generate(
            self.model,
            [self._encode(p) for p in prompts],
            max_new_tokens=self.settings.max_new_tokens,
            eos_id=self.tokenizer.eos_token_id,
            pad_id=self.tokenizer.pad_token_id,
            temperature=temperature,
            generator=(generator or self.sample_rng) if temperature > 0 else None,
            with_logprobs=with_logprobs,
        )

    def evaluate(self, chunk: int = 256, samples_per_prompt: int | None = None) -> dict[str, float]:
        """Held-out metrics: greedy accuracy on every held-out prompt, and unbiased pass@k for k = 1, 2, 4, ...
        up to n from n samples (``samples_per_prompt``, default G) at the rollout temperature on the first
        ``eval_sampled_prompts`` (exploration shows at large k).

        The samples come from their own generator, seeded by the run's seed and step, so that evaluating
        neither perturbs training's random streams nor depends on when a run was resumed.
        """
        from asym_eval.scoring import pass_at_k_curve

        s, problems = self.settings, self.task.heldout
        greedy = 0.0
        for start in range(0, len(problems), chunk):
            part = problems[start : start + chunk]
            responses = decode_responses(
                self.tokenizer, self._rollouts([p.prompt for p in part], temperature=0.0)
            )
            greedy += sum(self.task.reward(r, p) for r, p in zip(responses, part))
        metrics = {"eval/accuracy": greedy / len(problems)}
        if s.eval_sampled_prompts == 0:
            return metrics

        sampled: list[list[int]] = []  # per prompt, the correctness of its G samples
        rng = torch.Generator(device=self.device).manual_seed(s.seed * 1_000_003 + self.step_count)
        n = samples_per_prompt or s.group_size
        repeated = [p for p in problems[: s.eval_sampled_prompts] for _ in range(n)]
        block = (
            max(1, chunk * s.group_size // n) * n
        )  # whole prompts per generate call, about chunk*G samples
        for start in range(0, len(repeated), block):
            part = repeated[start : start + block]
            batch = self._rollouts([p.prompt for p in part], temperature=s.temperature, generator=rng)
            hits = [
                int(self.task.reward(r, p)) for r, p in zip(decode_responses(self.tokenizer, batch), part)
            ]
            sampled += [hits[i : i + n] for i in range(0, len(hits), n)]
        metrics.update({f"eval/pass_at_{k}": v for k, v in pass_at_k_curve(sampled).items()})
        return metrics

    def step(self) -> dict:
        """One rollout batch and its ``mini_batches`` optimizer steps; returns the step's metrics."""
        s = self.settings
        num_prompts, group_size = s.prompts_per_step, s.group_size
        picks = torch.randperm(len(self.task.train), generator=self.data_rng)[:num_prompts].tolist()
        problems = [self.task.train[i] for i in picks for _ in range(group_size)]  # grouped: (P*G,)
        batch = self._rollouts([p.prompt for p in problems], temperature=s.temperature, with_logprobs=True)
        responses = decode_responses(self.tokenizer, batch)
        correct = torch.tensor([self.task.reward(r, p) for r, p in zip(responses, problems)])
        correct = correct.view(num_prompts, group_size)  # (P, G)
        mask = batch.response_mask.float()  # (B, T)

        old_logp, old_entropy = batch.logprobs, batch.entropy  # (B, T) each, from the sampler
        options = options_at_step(s.options, self.step_count, s.steps, self.beta_controller)  # β at this step
        advantages = compute_advantages(s.estimator, correct, options)  # (P, G)
        if s.control_advantages == "negate":
            advantages = -advantages
        elif s.control_advantages == "shuffle":
            advantages = advantages.flatten()[torch.randperm(advantages.numel(), generator=self.data_rng)]
            advantages = advantages.view(num_prompts, group_size)
        flat_adv = advantages.flatten().to(self.device)  # (B,)

        mean_logp = masked_mean(old_logp, mask, dim=1).view(num_prompts, group_size).cpu()
        grouped = [responses[i : i + group_size] for i in range(0, len(responses), group_size)]
        metrics = {
            "rollout/unique_correct_frac": None,  # logged as missing where no group has a correct rollout
            **rollout_metrics(correct, grouped, mean_logp, advantages),
            "rollout/response_length": mask.sum(1).mean().item(),
            "actor/entropy": mean_token_entropy(old_entropy, mask).item(),
            **beta_metrics(s.estimator, options),
            **entropy_pos_neg(entropy_by_correctness(old_entropy, mask, correct.flatten())),
        }

        self.model.train()
        control = TokenControl(**(s.token_control or {}))
        entropy_adv = EntropyAdvantage(s.entropy_adv_alpha, s.entropy_adv_kappa)
        need_entropy = s.entropy_coef > 0 or entropy_adv.active or control.top_entropy_rho is not None
        order = torch.randperm(len(problems), generator=self.data_rng)
        losses, clip_fracs, cov_fracs = [], [], []
        # Under the plain clipped surrogate a token with advantage 0 has loss 0 and gradient 0, so rows with
        # A = 0 (under GRPO, every row of a group that all passed or all failed) need no forward: they enter the
        # loss as zeros and keep their tokens in its denominator. Token controls and entropy terms depend on
        # every row, so with them every row runs.
        skip_zero_advantage = s.token_control is None and not need_entropy
        for rows in order.chunk(s.mini_batches):
            rows_dev = rows.to(self.device)
            part_mask = mask[rows_dev]
            run = flat_adv[rows_dev] != 0 if skip_zero_advantage else torch.ones_like(part_mask[:, 0]).bool()
            if not run.any():  # one row gives the step its gradient (zero, as every row's): AdamW still steps
                run[0] = True
            # Rows of a group share their prompt: it runs once per distinct prompt (rollout.py says why).
            logp, entropy = response_logprobs(
                self.model, batch.select(rows_dev[run]), with_entropy=need_entropy, share_prompts=True
            )
            token_adv = flat_adv[rows_dev[run]][:, None].expand_as(logp)  # outcome advantage on every token
            if entropy_adv.active:
                token_adv = entropy_shaped_advantages(
                    token_adv, entropy, s.entropy_adv_alpha, s.entropy_adv_kappa
                )
            run_loss, run_clipped, run_cov = controlled_token_loss(
                logp,
                old_logp[rows_dev[run]],
                token_adv,
                part_mask[run],
                s.eps_low,
                s.eps_high,
                control,
                entropy,
                self.data_rng,
            )
            token_loss = torch.zeros_like(part_mask, dtype=run_loss.dtype)  # (mini-batch B, T)
            token_loss[run] = run_loss
            clipped = torch.zeros_like(part_mask, dtype=torch.bool)
            clipped[run] = run_clipped
            cov = torch.zeros_like(part_mask, dtype=torch.bool)
            cov[run] = run_cov
            loss = aggregate_loss(token_loss, part_mask, s.loss_agg, s.max_new_tokens)
            if s.entropy_coef > 0:
                loss = entropy_regularized(loss, mean_token_entropy(entropy, part_mask), s.entropy_coef)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if s.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
            self.optimizer.step()
            losses.append(loss.item())
            clip_fracs.append(masked_mean(clipped.float(), part_mask).item())
            cov_fracs.append(masked_mean(cov.float(), part_mask).item())

        # Only correct rollouts enter the gain, so only they are scored again.
        is_correct = correct.flatten().bool().to(self.device)
        gain = None
        if is_correct.any():
            with torch.no_grad():
                new_logp, _ = response_logprobs(self.model, batch.select(is_correct), share_prompts=True)
            ones = torch.ones(int(is_correct.sum()), device=self.device)
            gain = positive_logprob_gain(new_logp, old_logp[is_correct], mask[is_correct], ones)
        metrics["actor/pos_logprob_gain"] = gain
        metrics["actor/policy_loss"] = sum(losses) / len(losses)
        metrics["actor/clip_frac"] = sum(clip_fracs) / len(clip_fracs)
        metrics["actor/cov_frac"] = sum(cov_fracs) / len(cov_fracs)
        if self.beta_controller is not None:  # this step's entropy sets the next step's β
            self.beta_controller.update(metrics["actor/entropy"])
        self.step_count += 1
        return metrics

    # --- checkpoints: everything a resumed run needs to continue bit-for-bit ---
    def save_checkpoint(self, path: Path) -> None:
        state = {
            "step": self.step_count,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "data_rng": self.data_rng.get_state(),
            "sample_rng": self.sample_rng.get_state(),
            "beta_control": None if self.beta_controller is None else self.beta_controller.state(),
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.data_rng.set_state(state["data_rng"].cpu())
        self.sample_rng.set_state(state["sample_rng"].cpu())
        self.step_count = state["step"]
        if self.beta_controller is not None:  # a resumed run continues with the β it had
            self.beta_controller.load_state(state["beta_control"])

    def save_policy(self, path: Path) -> None:
        """The final policy as an HF directory (model + tokenizer), written next to ``path`` then renamed."""
        import shutil

        tmp = path.with_name(path.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        self.model.save_pretrained(tmp)
        self.tokenizer.save_pretrained(tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)


def _read_metrics(path: Path, up_to_step: int) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if row["step"] <= up_to_step]


def train(settings: Settings, progress: bool = True) -> dict:
    """Run (or resume) one training; returns the summary also written to ``OUTPUT/summary.json``."""
    from tqdm import tqdm

    s = settings
    out = Path(s.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path, summary_path = out / "config.json", out / "summary.json"
    checkpoint, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    config = s.to_json()
    if config_path.exists():
        saved = json.loads(config_path.read_text(encoding="utf-8"))
        changed = sorted(
            k
            for k in set(saved) | set(config)
            if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k)
        )
        if changed:
            raise ValueError(
                f"--output_dir: {out} holds a run with other settings ({', '.join(changed)}); use a new --output_dir"
            )
    if summary_path.exists():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if summary["steps"] == s.steps:
            return summary  # finished already
    write_atomic(config_path, json.dumps(config, indent=2))

    trainer = Trainer(s)
    write_atomic(
        out / "heldout.jsonl",
        "".join(
            json.dumps({"id": p.id, "problem": p.prompt, "answer": p.answer}) + "\n"
            for p in trainer.task.heldout
        ),
    )
    if checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
    # Keep the metric rows the checkpoint covers; steps logged after it are redone identically.
    rows = _read_metrics(metrics_path, trainer.step_count)
    write_atomic(metrics_path, "".join(json.dumps(row) + "\n" for row in rows))

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tb"), purge_step=trainer.step_count + 1 if trainer.step_count else None)

    def log(row: dict) -> None:
        with open(metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and value is not None:
                writer.add_scalar(key, value, row["step"])

    curve_n = s.pass_curve_samples or None  # the start and the end get the long pass@k curve
    if not rows:
        rows = [{"step": 0, **trainer.evaluate(samples_per_prompt=curve_n)}]
        log(rows[0])
    started = time.perf_counter()
    start_step = trainer.step_count
    if start_step and progress:
        print(f"resuming: {start_step} of {s.steps} steps done ({out})")
    bar = tqdm(
        total=s.steps, initial=start_step, desc=f"lite {s.estimator}", disable=not progress, unit="step"
    )
    # The bar shows the latest held-out accuracy from the start (step 0 is always evaluated).
    last_eval = next((row["eval/accuracy"] for row in reversed(rows) if "eval/accuracy" in row), None)
    while trainer.step_count < s.steps:
        row = {"step": trainer.step_count + 1, **trainer.step()}
        if row["step"] % s.eval_every == 0 or row["step"] == s.steps:
            row.update(trainer.evaluate(samples_per_prompt=curve_n if row["step"] == s.steps else None))
            last_eval = row["eval/accuracy"]
        log(row)
        if row["step"] % s.save_every == 0:
            trainer.save_checkpoint(checkpoint)
        bar.update(1)
        bar.set_postfix(
            reward=f"{row['rollout/accuracy']:.2f}",
            entropy=f"{row['actor/entropy']:.3f}",
            eval=None if last_eval is None else f"{last_eval:.3f}",
        )
    bar.close()
    writer.close()
    trainer.save_checkpoint(checkpoint)
    trainer.save_policy(out / "final")
    elapsed = time.perf_counter() - started
    rows = _read_metrics(metrics_path, s.steps)
    summary = {
        "steps": s.steps,
        "estimator": s.estimator,
        "eval/accuracy": rows[-1].get("eval/accuracy"),
        "eval/accuracy_start": rows[0].get("eval/accuracy"),
        "seconds_this_session": round(elapsed, 2),
        "seconds_per_step_this_session": round(elapsed / max(s.steps - start_step, 1), 4),
        "final_policy": str(out / "final"),
        "heldout": str(out / "heldout.jsonl"),
    }
    write_atomic(summary_path, json.dumps(summary, indent=2))
    return summary


def eval_command(settings: Settings) -> str:
    """The ``asym-eval run`` line that scores a finished run's policy on its held-out prompts, as lite's own
    eval does: greedy, one sample, raw prompts, lite's response length, the hf backend (vLLM's start-up costs
    more than the whole evaluation of a tiny model), float32. ``tests/test_lite_training.py`` runs it."""
    out = Path(settings.output_dir)
    model, heldout, eval_dir = (shlex.quote(str(out / name)) for name in ("final", "heldout.jsonl", "eval"))
    return (
        f"asym-eval run --model {model} --benchmarks lite={heldout} "
        f"--output_dir {eval_dir} --prompt_format raw --backend hf --dtype float32 --temperature 0 "
        f"--n 1 --max_tokens {settings.max_new_tokens}"
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    summary = train(settings)
    out = Path(settings.output_dir)
    print(
        f"held-out greedy accuracy {summary['eval/accuracy_start']:.3f} -> {summary['eval/accuracy']:.3f} "
        f"in {summary['steps']} steps ({settings.estimator}); metrics: {out / 'metrics.jsonl'}, "
        f"policy: {out / 'final'}\n"
        f"evaluate it: {eval_command(settings)}"
    )
    return 0
