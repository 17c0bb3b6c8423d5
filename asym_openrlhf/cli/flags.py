"""The estimator flags, defined once for every command that takes them.

``asym-rl advantage-table``, ``asym-rl lite`` and the OpenRLHF launcher all call ``add_estimator_flags`` and
``estimator_from_args``, so a flag has one name, one help text and one validation everywhere.
"""

from __future__ import annotations

import argparse

from asym_eval.options import add_flags, flag_of, from_args, given, name_flag
from asym_eval.options import validate as validate_declared

from asym_openrlhf.algorithms.advantages import ESTIMATORS, AdvantageOptions, advantage_curves, get_estimator
from asym_openrlhf.algorithms.control import BetaController
from asym_openrlhf.algorithms.losses import EntropyAdvantage, TokenControl

# Options only some estimators read (the channel weights and the schedule apply to every estimator of ours).
READ_BY_SOME = {option for estimator in ESTIMATORS.values() for option in estimator.reads}


def add_estimator_flags(
    parser: argparse.ArgumentParser, *, estimator_flags=("--advantage_estimator",), default="asym_grpo"
):
    """Add the estimator choice, its options (``AdvantageOptions``) and the entropy controller's
    (``BetaController``). ``estimator_flags`` names the flag(s) of the estimator."""
    parser.add_argument(
        *estimator_flags,
        dest="advantage_estimator",
        default=default,
        metavar="NAME",
        help=f"advantage estimator, one of: {', '.join(ESTIMATORS)}. Presets fix beta_pos/beta_neg/flip "
        f"(see `asym-rl advantage-table --list`). Default: {default}.",
    )
    add_flags(parser, AdvantageOptions)
    add_flags(parser, BetaController)


def estimator_from_args(
    args: argparse.Namespace, group_size: int | None = None, group_size_flag: str = "--group_size"
) -> tuple[str, AdvantageOptions]:
    """Validate the estimator flags; return ``(name, options)``.

    Raises ``ValueError`` with a one-line message that names the flag. When ``group_size`` is given the
    estimator is also checked against it (G >= 2, K <= G).
    """
    name = args.advantage_estimator
    try:
        estimator = get_estimator(name)
    except ValueError as err:
        raise ValueError(f"--advantage_estimator: {err}") from None
    set_options = given(AdvantageOptions, args)
    for key, value in set_options.items():
        if key in READ_BY_SOME and key not in estimator.reads and key not in estimator.fixed:
            readers = ", ".join(n for n, e in ESTIMATORS.items() if key in e.reads)
            raise ValueError(
                f"{flag_of(AdvantageOptions, key)}: only applies to {readers}; {name!r} does not read {key}"
            )
        if key in estimator.fixed and value != estimator.fixed[key]:
            raise ValueError(
                f"{flag_of(AdvantageOptions, key)}: preset {name!r} fixes {key} = {estimator.fixed[key]!r}; "
                f"use --advantage_estimator asym_grpo to set it yourself"
            )
    if set_options.get("beta_schedule", "constant") != "constant":
        _require_movable_beta(estimator, "--asym.beta_schedule")
    options = AdvantageOptions(**set_options)
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
    return name_flag(AdvantageOptions, message)


def beta_controller_from_args(args: argparse.Namespace, name: str, options: AdvantageOptions):
    """The entropy-targeted β controller the flags ask for, validated, or None; one-line errors name the flag."""
    control = given(BetaController, args)
    if "target" not in control:
        for key in control:
            raise ValueError(f"{flag_of(BetaController, key)}: only applies with --asym.target_entropy")
        return None
    estimator = ESTIMATORS[name]
    _require_movable_beta(estimator, "--asym.target_entropy")
    if options.beta_schedule != "constant":
        raise ValueError(
            "--asym.target_entropy: choose either a beta schedule or the entropy target, not both"
        )
    resolved = estimator.resolve(options)
    controller = BetaController(**control, beta_pos=resolved.beta_pos, beta_neg=resolved.beta_neg)
    try:
        controller.validate()
    except ValueError as err:
        raise ValueError(name_flag(BetaController, str(err))) from None
    return controller


def add_token_control_flags(parser: argparse.ArgumentParser) -> None:
    """Token-level entropy control (both training paths): Clip-Cov / KL-Cov and top-entropy tokens."""
    add_flags(parser, TokenControl)


def token_control_from_args(args: argparse.Namespace) -> TokenControl | None:
    """The token control the flags ask for, validated (one line naming the flag), or None."""
    set_fields = given(TokenControl, args)
    mode = set_fields.get("cov_mode")
    cov_only = {"cov_ratio", "clip_cov_low", "clip_cov_high", "kl_cov_coef"} & set(set_fields)
    if mode is None:
        for key in cov_only:
            raise ValueError(f"{flag_of(TokenControl, key)}: only applies with --cov.mode clip_cov or kl_cov")
        if "top_entropy_rho" not in set_fields:
            return None
    control = TokenControl(**set_fields)
    try:
        validate_declared(control)
    except ValueError as err:
        raise ValueError(name_flag(TokenControl, str(err))) from None
    if not control.clip_cov_low < control.clip_cov_high:
        raise ValueError("--cov.clip_ub: must be above --cov.clip_lb")
    if mode == "clip_cov" and "kl_cov_coef" in set_fields:
        raise ValueError("--cov.kl_coef: only applies with --cov.mode kl_cov")
    if mode == "kl_cov" and {"clip_cov_low", "clip_cov_high"} & set(set_fields):
        raise ValueError("--cov.clip_lb/--cov.clip_ub: only apply with --cov.mode clip_cov")
    return control


def add_entropy_advantage_flags(parser: argparse.ArgumentParser) -> None:
    """Entropy Advantage's α and κ (both training paths)."""
    add_flags(parser, EntropyAdvantage)


def entropy_advantage_from_args(args: argparse.Namespace) -> EntropyAdvantage:
    """The Entropy Advantage settings, validated; a one-line error names the flag."""
    return from_args(EntropyAdvantage, args)
