"""The estimator flags, defined once for every command that takes them.

``asym-rl advantage-table``, ``asym-rl lite`` and the OpenRLHF launcher all call ``add_estimator_flags`` and
``estimator_from_args``, so a flag has one name, one help text and one validation everywhere.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields

from asym_openrlhf.algorithms.advantages import (
    BETA_SCHEDULES,
    ESTIMATORS,
    FLIPS,
    MAX_BETA,
    MAX_SCALE,
    AdvantageOptions,
    advantage_curves,
)
from asym_openrlhf.algorithms.control import ADAPT, BetaController
from asym_openrlhf.algorithms.losses import COV_MODES, TokenControl

_DEFAULTS = AdvantageOptions()
# option name -> the flag a user types, so that errors from the core name the flag.
OPTION_FLAGS = {
    "beta_pos": "--asym.beta_pos",
    "beta_neg": "--asym.beta_neg",
    "flip": "--asym.flip",
    "k": "--pass_k.k",
    "scale_pos": "--asym.scale_pos",
    "scale_neg": "--asym.scale_neg",
    "beta_schedule": "--asym.beta_schedule",
    "beta_pos_end": "--asym.beta_pos_end",
    "beta_neg_end": "--asym.beta_neg_end",
}


def add_estimator_flags(
    parser: argparse.ArgumentParser, *, estimator_flags=("--advantage_estimator",), default=None
):
    """Add the estimator choice and its options. ``estimator_flags`` names the flag(s) of the estimator."""
    parser.add_argument(
        *estimator_flags,
        dest="advantage_estimator",
        default=default,
        metavar="NAME",
        help=f"advantage estimator, one of: {', '.join(ESTIMATORS)}. Presets fix beta_pos/beta_neg/flip "
        f"(see `asym-rl advantage-table --list`). Default: {default}.",
    )
    parser.add_argument(
        "--asym.beta_pos",
        dest="asym_beta_pos",
        type=float,
        default=None,
        metavar="BETA",
        help=f"AsymGRPO beta+ (Eq. 10): correct rollouts get ((1-p)/p)^beta+. 0 = REINFORCE's +1, 0.5 = GRPO; "
        f"range [0, {MAX_BETA:g}], default {_DEFAULTS.beta_pos}.",
    )
    parser.add_argument(
        "--asym.beta_neg",
        dest="asym_beta_neg",
        type=float,
        default=None,
        metavar="BETA",
        help=f"AsymGRPO beta- (Eq. 10): wrong rollouts get -(p/(1-p))^beta-. 0 = REINFORCE's -1, 0.5 = GRPO; "
        f"range [0, {MAX_BETA:g}], default {_DEFAULTS.beta_neg}.",
    )
    parser.add_argument(
        "--asym.flip",
        dest="asym_flip",
        default=None,
        metavar="{" + ",".join(FLIPS) + "}",
        help="reflect a curve around p = 0.5 (App. D): pos = EntDecrease, neg = EntIncrease; default none.",
    )
    for side, rollouts in (("pos", "correct"), ("neg", "wrong")):
        parser.add_argument(
            f"--asym.scale_{side}",
            dest=f"asym_scale_{side}",
            type=float,
            default=None,
            metavar="W",
            help=f"channel weight: multiplies the {rollouts} rollouts' advantage curve of any estimator, in "
            f"[0, {MAX_SCALE:g}]; default 1. W-REINFORCE (Zhu et al. 2025, arXiv 2506.01347) is "
            "--advantage_estimator w_reinforce (+lambda / -1, lambda = 0.1); psr and nsr keep one channel.",
        )
    parser.add_argument(
        "--asym.beta_schedule",
        dest="asym_beta_schedule",
        default=None,
        metavar="{" + ",".join(BETA_SCHEDULES) + "}",
        help="move beta+ / beta- over the run's training steps, from --asym.beta_pos / --asym.beta_neg at the "
        "first to --asym.beta_pos_end / --asym.beta_neg_end at the last: linear, or cosine (slow at both ends). "
        "Beyond the paper, which fixes beta (its Limitations). Default constant.",
    )
    for side in ("pos", "neg"):
        parser.add_argument(
            f"--asym.beta_{side}_end",
            dest=f"asym_beta_{side}_end",
            type=float,
            default=None,
            metavar="BETA",
            help=f"beta_{side} at the last training step under --asym.beta_schedule, in [0, {MAX_BETA:g}]; "
            "unset: that beta stays fixed.",
        )
    parser.add_argument(
        "--asym.target_entropy",
        dest="asym_target_entropy",
        type=float,
        default=None,
        metavar="H",
        help="entropy-targeted beta (beyond the paper): after each step, move beta toward holding actor/entropy "
        "at H nats per token: beta+ += rate * (H - entropy) and/or beta- -= rate * (H - entropy), within "
        f"[0, {MAX_BETA:g}]. asym_grpo only; the start values are --asym.beta_pos / --asym.beta_neg. Default: off.",
    )
    parser.add_argument(
        "--asym.adapt_rate",
        dest="asym_adapt_rate",
        type=float,
        default=None,
        metavar="RATE",
        help="with --asym.target_entropy: beta change per nat of entropy error per step (> 0); default 1.0.",
    )
    parser.add_argument(
        "--asym.adapt",
        dest="asym_adapt",
        default=None,
        metavar="{" + ",".join(ADAPT) + "}",
        help="with --asym.target_entropy: which beta the controller moves. pos (default): beta+ up keeps the "
        "informative entropy of rare successes; neg: beta- down stops pruning wrong rollouts so hard; both.",
    )
    parser.add_argument(
        "--pass_k.k",
        dest="pass_k_k",
        type=int,
        default=None,
        metavar="K",
        help=f"K of Pass@K training, 1 <= K <= group size; default {_DEFAULTS.k} (the paper's).",
    )


def estimator_from_args(
    args: argparse.Namespace, group_size: int | None = None, group_size_flag: str = "--group_size"
) -> tuple[str, AdvantageOptions]:
    """Validate the estimator flags; return ``(name, options)``.

    Raises ``ValueError`` with a one-line message that names the flag. When ``group_size`` is given the
    estimator is also checked against it (G >= 2, K <= G).
    """
    name = args.advantage_estimator
    if name not in ESTIMATORS:
        raise ValueError(
            f"--advantage_estimator: unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}"
        )
    given = {
        "beta_pos": args.asym_beta_pos,
        "beta_neg": args.asym_beta_neg,
        "flip": args.asym_flip,
        "k": args.pass_k_k,
        "scale_pos": args.asym_scale_pos,
        "scale_neg": args.asym_scale_neg,
        "beta_schedule": args.asym_beta_schedule,
        "beta_pos_end": args.asym_beta_pos_end,
        "beta_neg_end": args.asym_beta_neg_end,
    }
    given = {key: value for key, value in given.items() if value is not None}
    estimator = ESTIMATORS[name]
    for key, value in given.items():
        if key in estimator.fixed and value != estimator.fixed[key]:
            raise ValueError(
                f"{OPTION_FLAGS[key]}: preset {name!r} fixes {key} = {estimator.fixed[key]!r}; "
                f"use --advantage_estimator asym_grpo to set it yourself"
            )
    if given.get("beta_schedule", "constant") != "constant":
        _require_movable_beta(estimator, "--asym.beta_schedule")
    options = AdvantageOptions(**given)
    try:
        options.validate()
        if group_size is not None:
            advantage_curves(name, group_size, options)
    except ValueError as err:
        raise ValueError(_name_flag(str(err), group_size_flag)) from None
    return name, options


def _require_movable_beta(estimator, flag: str) -> None:
    """A schedule or a controller moves beta: the estimator must read beta and not be a preset that fixes it."""
    if "beta_pos" not in estimator.reads or {"beta_pos", "beta_neg"} & set(estimator.fixed):
        raise ValueError(
            f"{flag}: {estimator.name!r} has no beta of its own to move; use --advantage_estimator asym_grpo"
        )


def _name_flag(message: str, group_size_flag: str) -> str:
    """Prefix a core error with the flag it is about."""
    if message.startswith("group_size "):
        return f"{group_size_flag}: {message}"
    for option in (f.name for f in fields(AdvantageOptions)):
        if message.startswith(option + " "):
            return f"{OPTION_FLAGS[option]}: {message}"
    return message


# The controller's flags (not estimator options: they act between steps), for errors that name the flag.
CONTROL_FLAGS = {
    "target_entropy": "--asym.target_entropy",
    "adapt_rate": "--asym.adapt_rate",
    "adapt": "--asym.adapt",
}


def beta_controller_from_args(args: argparse.Namespace, name: str, options: AdvantageOptions):
    """The entropy-targeted β controller the flags ask for, validated, or None; one-line errors name the flag."""
    if args.asym_target_entropy is None:
        for dest, flag in (("asym_adapt_rate", "--asym.adapt_rate"), ("asym_adapt", "--asym.adapt")):
            if getattr(args, dest) is not None:
                raise ValueError(f"{flag}: only applies with --asym.target_entropy")
        return None
    estimator = ESTIMATORS[name]
    _require_movable_beta(estimator, "--asym.target_entropy")
    if options.beta_schedule != "constant":
        raise ValueError(
            "--asym.target_entropy: choose either a beta schedule or the entropy target, not both"
        )
    resolved = estimator.resolve(options)
    controller = BetaController(
        target=args.asym_target_entropy,
        rate=1.0 if args.asym_adapt_rate is None else args.asym_adapt_rate,
        adapt=args.asym_adapt or "pos",
        beta_pos=resolved.beta_pos,
        beta_neg=resolved.beta_neg,
    )
    try:
        controller.validate()
    except ValueError as err:
        option = str(err).split(" ")[0]
        raise ValueError(f"{CONTROL_FLAGS[option]}: {err}") from None
    return controller


def add_token_control_flags(parser: argparse.ArgumentParser) -> None:
    """Token-level entropy control (both training paths): Clip-Cov / KL-Cov and top-entropy tokens."""
    defaults = TokenControl()
    parser.add_argument(
        "--cov.mode",
        dest="cov_mode",
        default=None,
        metavar="{" + ",".join(COV_MODES) + "}",
        help="Clip-Cov or KL-Cov (Cui et al. 2025, arXiv 2505.22617, as verl's clip_cov / kl_cov): cut the "
        "gradient of a few random tokens of high Cov(log pi, A), or add coef*|log pi - log pi_old| to the "
        "highest-covariance ones (KL-Cov drops the ratio clip, as verl). Default: off.",
    )
    parser.add_argument(
        "--cov.ratio",
        dest="cov_ratio",
        type=float,
        default=None,
        metavar="R",
        help="expected fraction of each micro-batch's response tokens Clip-Cov / KL-Cov act on, in (0, 1] (the "
        "count is rounded stochastically, so the fraction holds at any micro-batch size; logged as "
        f"actor/cov_frac); default {defaults.cov_ratio:g} (verl's PolicyLossConfig; the paper's KL-Cov k for "
        "Qwen2.5-7B is 2e-3).",
    )
    for name, value, what in (
        ("clip_lb", defaults.clip_cov_low, "lower"),
        ("clip_ub", defaults.clip_cov_high, "upper"),
    ):
        parser.add_argument(
            f"--cov.{name}",
            dest=f"cov_{name}",
            type=float,
            default=None,
            metavar="C",
            help=f"Clip-Cov: {what} covariance bound of the tokens it may cut; default {value:g} (verl's).",
        )
    parser.add_argument(
        "--cov.kl_coef",
        dest="cov_kl_coef",
        type=float,
        default=None,
        metavar="K",
        help=f"KL-Cov: coefficient of the |log-ratio| penalty (> 0); default {defaults.kl_cov_coef:g} (the "
        "paper's recipes; verl's PolicyLossConfig default is 0.1).",
    )
    parser.add_argument(
        "--top_entropy.rho",
        dest="top_entropy_rho",
        type=float,
        default=None,
        metavar="RHO",
        help="top-entropy-token training (Wang et al. 2025, 'Beyond the 80/20 Rule', arXiv 2506.01939): only "
        "the fraction rho of response tokens of highest (detached) entropy get a policy gradient; the paper "
        "uses 0.2. Default: off.",
    )


def token_control_from_args(args: argparse.Namespace) -> TokenControl | None:
    """The token control the flags ask for, validated (one line naming the flag), or None."""
    mode, rho = args.cov_mode, args.top_entropy_rho
    cov_flags = {
        "--cov.ratio": args.cov_ratio,
        "--cov.clip_lb": args.cov_clip_lb,
        "--cov.clip_ub": args.cov_clip_ub,
        "--cov.kl_coef": args.cov_kl_coef,
    }
    if mode is None:
        for flag, value in cov_flags.items():
            if value is not None:
                raise ValueError(f"{flag}: only applies with --cov.mode clip_cov or kl_cov")
        if rho is None:
            return None
    elif mode not in COV_MODES:
        raise ValueError(f"--cov.mode: must be one of {', '.join(COV_MODES)}, got {mode!r}")
    given = {
        "cov_ratio": args.cov_ratio,
        "clip_cov_low": args.cov_clip_lb,
        "clip_cov_high": args.cov_clip_ub,
        "kl_cov_coef": args.cov_kl_coef,
    }
    control = TokenControl(
        cov_mode=mode, top_entropy_rho=rho, **{k: v for k, v in given.items() if v is not None}
    )
    checks = [
        ("--cov.ratio", math.isfinite(control.cov_ratio) and 0 < control.cov_ratio <= 1, "must be in (0, 1]"),
        ("--cov.kl_coef", math.isfinite(control.kl_cov_coef) and control.kl_cov_coef > 0, "must be > 0"),
        ("--cov.clip_ub", control.clip_cov_low < control.clip_cov_high, "must be above --cov.clip_lb"),
        ("--top_entropy.rho", rho is None or (math.isfinite(rho) and 0 < rho <= 1), "must be in (0, 1]"),
    ]
    for flag, ok, message in checks:
        if not ok:
            raise ValueError(f"{flag}: {message}")
    if mode == "clip_cov" and args.cov_kl_coef is not None:
        raise ValueError("--cov.kl_coef: only applies with --cov.mode kl_cov")
    if mode == "kl_cov" and (args.cov_clip_lb is not None or args.cov_clip_ub is not None):
        raise ValueError("--cov.clip_lb/--cov.clip_ub: only apply with --cov.mode clip_cov")
    return control
