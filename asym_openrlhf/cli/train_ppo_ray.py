"""``python -m asym_openrlhf.cli.train_ppo_ray``: OpenRLHF 0.11.2's PPO-Ray launcher with AsymGRPO & co.

Takes every flag of ``python -m openrlhf.cli.train_ppo_ray`` unchanged (its own parser parses them; nothing is
copied) plus ours: ``--advantage_estimator`` (also ``--algo.advantage.estimator``), ``--asym.*``,
``--pass_k.k``, ``--entropy_adv.*``, ``--asym.log_pos_logprob_gain`` and ``--dry_run``.

How it hooks in, without patching anything inside a Ray actor (a driver-side patch does not reach them):
  1. our flags are parsed first (``parse_known_args``); the rest goes to upstream's parser, with an estimator
     upstream accepts in place of ours;
  2. upstream's ``hierarchize`` is wrapped: it puts our estimator's name back and attaches ``args.asym``
     (validated; a bad value is one line naming the flag, before Ray starts). ``args`` reaches every actor;
  3. upstream's ``train()`` is handed our Ray actor classes (trainer and policy actor), which build our
     experience maker and loss inside the actors;
  4. ``--dry_run`` stops where ``train()`` would start Ray and prints the resolved configuration as JSON.

Estimator names mean one algorithm everywhere: every name of ``asym_openrlhf.algorithms.advantages.ESTIMATORS``
(``group_norm`` and ``dr_grpo`` included, with the loss aggregation the registry gives them) runs through
``compute_advantages``, as in ``asym-rl lite``; OpenRLHF's estimators that are not in the registry
(``OPENRLHF_ONLY``: gae, reinforce, rloo, reinforce_baseline, flash_reinforce) run upstream's code untouched.
The paper's +1/-1 REINFORCE is ``reinforce_pm1``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import runpy
import sys
from types import SimpleNamespace

from asym_openrlhf.algorithms.advantages import ESTIMATORS, OPENRLHF_ONLY
from asym_openrlhf.cli.flags import add_entropy_advantage_flags, add_estimator_flags, add_token_control_flags
from asym_openrlhf.cli.launcher_settings import (
    OUR_OPTION_FLAGS,
    _refuse,
    check_prompt_count,
    resolve_settings,
)
from asym_openrlhf.integration.weight_sync_check import DEFAULT_TOLERANCE

PROG = "python -m asym_openrlhf.cli.train_ppo_ray"
# Modules OpenRLHF imports at module level that only a GPU install has.
GPU_ONLY_MODULES = ("flash_attn", "flash_attn_2_cuda", "vllm")
# Upstream's parser must accept the estimator it is given; ours is put back right after it parses.
PLACEHOLDER_ESTIMATOR = "group_norm"
DEFAULT_ESTIMATOR = "asym_grpo"  # as every command of this project (upstream's own default is gae)


class DryRunDone(Exception):
    """Raised where upstream's ``train()`` would start Ray: the configuration is complete."""


def build_parser() -> argparse.ArgumentParser:
    """Our flags only; everything else is upstream's."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        add_help=False,  # -h reaches upstream's parser too, which prints its own flags
        allow_abbrev=False,  # an abbreviation must never swallow one of upstream's flags
        description="This project's flags (every OpenRLHF 0.11.2 train_ppo_ray flag is accepted as well):",
    )
    add_estimator_flags(
        parser,
        estimator_flags=("--advantage_estimator", "--algo.advantage.estimator"),
        default=DEFAULT_ESTIMATOR,
    )
    add_entropy_advantage_flags(parser)
    add_token_control_flags(parser)
    parser.add_argument(
        "--asym.log_pos_logprob_gain",
        dest="log_pos_logprob_gain",
        action="store_true",
        help="log actor/pos_logprob_gain, E[log pi_new(y) - log pi_old(y)] over correct rollouts after each "
        "update (Fig. 2 d,h). Costs one extra actor forward per step. Default: off.",
    )
    parser.add_argument(
        "--cpu_backend",
        action="store_true",
        help="run the whole loop on this machine's CPU, where CUDA is absent: real Ray (with logical GPUs), vLLM's "
        "CPU build, DeepSpeed's CPU accelerator over gloo, the weight sync over gloo. Needs --vllm.sync_backend "
        "gloo and --ds.attn_implementation sdpa, and no packing or sleep modes (asym-rl rehearse sets them). "
        "What it changes: asym_openrlhf/integration/cpu_backend.py. Default: off.",
    )
    parser.add_argument(
        "--asym.check_weight_sync",
        dest="check_weight_sync",
        type=float,
        nargs="?",
        const=DEFAULT_TOLERANCE,
        default=None,
        metavar="TOLERANCE",
        help="after every weight sync, have vLLM continue a few training prompts greedily and compare its "
        "log-probs with the DeepSpeed policy's on the same tokens; logged as actor/weight_sync_logprob_diff and "
        "written to <--ckpt.path>/weight_sync_check.jsonl. The run stops when the largest difference exceeds "
        f"TOLERANCE (default {DEFAULT_TOLERANCE}, measured for the bf16 tiny model on a CPU; a large model's "
        "bf16 kernels differ more). A sync that did nothing shows there once the policy has moved. Costs one "
        "short generation and one forward per step. Default: off.",
    )
    parser.add_argument(
        "--dry_run",
        action="store_true",
        help="parse and validate every flag with OpenRLHF's real parser, print the resolved configuration as "
        "JSON and exit: no Ray, no GPU.",
    )
    return parser


@contextlib.contextmanager
def _patched(target, name: str, value):
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, old)


@contextlib.contextmanager
def _cpu_backend_ray(resolved: dict):
    """Install the CPU backend in this process, and have upstream's ``ray.init`` start every worker with it."""
    import os

    import ray

    from asym_openrlhf.integration import cpu_backend

    os.environ[cpu_backend.ENV_FLAG] = "1"
    cpu_backend.install()
    upstream_init = ray.init

    def init_with_cpu_backend(*args, runtime_env=None, **kwargs):
        args_ = resolved["args"]
        options = cpu_backend.ray_init_options(args_.actor.num_nodes * args_.actor.num_gpus_per_node)
        env_vars = {**(runtime_env or {}).get("env_vars", {}), **options.pop("runtime_env")["env_vars"]}
        runtime_env = {**(runtime_env or {}), "env_vars": env_vars}
        return upstream_init(*args, runtime_env=runtime_env, **{**options, **kwargs})

    with _patched(ray, "init", init_with_cpu_backend):
        yield


def run_upstream(ours: argparse.Namespace, upstream_argv: list[str], dry_run: bool):
    """Run upstream's launcher module as ``__main__`` with our hooks; return the resolved ``args``."""
    from asym_openrlhf.integration import upstream

    upstream.check_version()
    resolved = {}
    original_hierarchize = upstream.config_module.hierarchize

    def hierarchize_with_ours(flat_args):
        args = original_hierarchize(flat_args)
        args.algo.advantage.estimator = ours.advantage_estimator
        args.asym = resolve_settings(ours, args)
        if not dry_run:
            check_prompt_count(
                args
            )  # a real launch only, and after the flags: a flag's mistake is named first
        resolved["args"] = args
        return args

    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(upstream.config_module, "hierarchize", hierarchize_with_ours))
        stack.enter_context(_patched(sys, "argv", [upstream.LAUNCHER_MODULE, *upstream_argv]))
        if dry_run:
            import ray

            def stop(*args, **kwargs):
                raise DryRunDone

            # train()'s first statement is `if not ray.is_initialized(): ray.init(...)`: stop there, whether
            # or not this process already runs Ray.
            stack.enter_context(_patched(ray, "is_initialized", stop))
        else:
            if ours.cpu_backend:
                stack.enter_context(_cpu_backend_ray(resolved))
            from asym_openrlhf.integration.trainer import AsymPolicyModelRayActor, AsymPPOTrainerRayActor

            # train() imports PPOTrainer inside the function, and the launcher module imports
            # PolicyModelActor when runpy executes it: both read these module attributes.
            stack.enter_context(_patched(upstream.ppo_trainer_module, "PPOTrainer", AsymPPOTrainerRayActor))
            stack.enter_context(
                _patched(upstream.ppo_actor_module, "PolicyModelActor", AsymPolicyModelRayActor)
            )
        try:
            runpy.run_module(upstream.LAUNCHER_MODULE, run_name="__main__", alter_sys=True)
        except DryRunDone:
            pass
    return resolved.get("args")


ESTIMATOR_FLAGS = ("--advantage_estimator", "--algo.advantage.estimator")
# Our options that move beta between steps: only for an estimator with a beta of its own to move.
BETA_MOVING = {"asym_beta_schedule", "asym_beta_pos_end", "asym_beta_neg_end", "asym_target_entropy"}
BETA_MOVING |= {"asym_adapt_rate", "asym_adapt"}


def _option_applies(dest: str, name: str) -> bool:
    """Whether our option ``dest`` (a key of OUR_OPTION_FLAGS) means something to estimator ``name``."""
    if name not in ESTIMATORS:
        return False
    estimator = ESTIMATORS[name]
    key = dest.removeprefix("asym_").removeprefix("pass_k_")
    if key in estimator.fixed:
        return False
    if dest in BETA_MOVING:
        return "beta_pos" in estimator.reads and not {"beta_pos", "beta_neg"} & set(estimator.fixed)
    if key in ("beta_pos", "beta_neg", "flip", "k"):
        return key in estimator.reads
    return True  # the channel weights apply to every estimator of ours


def drop_overridden_options(argv: list[str]) -> list[str]:
    """ "Flags after the script name win", for the estimator too: where ``--advantage_estimator`` is given more
    than once, our options given before the last one that do not apply to it (a script's ``--asym.beta_pos``
    under a user's ``--advantage_estimator reinforce``) are dropped, with a one-line note. Options given after
    it are the user's own and still refused when they do not apply."""
    places = [i for i, item in enumerate(argv) if item.split("=")[0] in ESTIMATOR_FLAGS]
    if len(places) < 2:
        return argv
    last = places[-1]
    name = argv[last].split("=", 1)[1] if "=" in argv[last] else (argv[last + 1 : last + 2] or [""])[0]
    by_flag = {flag: dest for dest, flag in OUR_OPTION_FLAGS.items()}
    kept, dropped, skip = [], [], 0
    for i, item in enumerate(argv):
        if skip:
            skip -= 1
            continue
        flag = item.split("=")[0]
        if i < last and flag in by_flag and not _option_applies(by_flag[flag], name):
            skip = 0 if "=" in item else 1  # each of our options takes one value
            dropped.append(" ".join(argv[i : i + 1 + skip]))
            continue
        kept.append(item)
    if dropped:
        print(
            f"[asym] note: --advantage_estimator {name} is given last, so {', '.join(dropped)} given before it "
            f"{'does' if len(dropped) == 1 else 'do'} not apply and {'is' if len(dropped) == 1 else 'are'} dropped",
            file=sys.stderr,
        )
    return kept


def split_argv(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our flags, and upstream's argv (with an estimator upstream's parser accepts)."""
    ours, rest = build_parser().parse_known_args(drop_overridden_options(argv))
    name = ours.advantage_estimator
    if name not in OPENRLHF_ONLY and name not in ESTIMATORS:
        choices = [*OPENRLHF_ONLY, *ESTIMATORS]
        _refuse("--advantage_estimator", f"unknown estimator {name!r}; choose from {', '.join(choices)}")
    placeholder = name if name in OPENRLHF_ONLY else PLACEHOLDER_ESTIMATOR
    return ours, [*rest, "--algo.advantage.estimator", placeholder]


def resolve_config(argv: list[str]):
    """Parse and validate ``argv`` exactly as a launch would; return the resolved ``args`` (no Ray)."""
    ours, upstream_argv = split_argv(argv)
    return run_upstream(ours, upstream_argv, dry_run=True)


def to_jsonable(value):
    """Nested namespaces -> dicts; inf/nan -> strings (JSON has no such numbers)."""
    if isinstance(value, SimpleNamespace | argparse.Namespace):
        return {key: to_jsonable(item) for key, item in sorted(vars(value).items())}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _one_line_parser_error(parser: argparse.ArgumentParser, message: str):
    """In place of ``ArgumentParser.error`` (usage, then exit): a ``ValueError`` that ``main`` prints as one
    line. An unknown flag is named with the closest flag of upstream's parser or ours."""
    import difflib

    prefix = "unrecognized arguments: "
    if message.startswith(prefix):
        unknown = next((item for item in message[len(prefix) :].split() if item.startswith("-")), "")
        known = set(parser._option_string_actions) | set(build_parser()._option_string_actions)
        close = difflib.get_close_matches(unknown.split("=")[0], sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f" ({PROG} --help lists every flag)"
        raise ValueError(f"{unknown}: unknown flag{hint}")
    raise ValueError(message)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-h" in argv or "--help" in argv:
        build_parser().print_help()
        print("\nOpenRLHF's flags:\n")
    # A dry run's stdout is the JSON alone: what upstream and its imports print goes to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if "--dry_run" in argv else contextlib.nullcontext()
    from asym_openrlhf.integration import kernel_placeholder

    # Parsing imports OpenRLHF, which imports flash-attn, which needs its compiled CUDA kernels. Where they
    # are missing (a CPU), a placeholder that raises if a kernel is ever called lets the real parser run. Then
    # only a dry run goes on; a real launch is validated the same way (bad flags are still named first) and
    # refused before Ray starts, so the placeholder never reaches a training run.
    no_kernels = not kernel_placeholder.kernels_available()
    if no_kernels:
        kernel_placeholder.install(quiet="--dry_run" not in argv)
    try:
        # Any parser's error (upstream's prints its 190-line usage first) becomes one line, with the closest flag.
        with quiet, _patched(argparse.ArgumentParser, "error", _one_line_parser_error):
            ours, upstream_argv = split_argv(argv)
            args = run_upstream(
                ours, upstream_argv, dry_run=ours.dry_run or (no_kernels and not ours.cpu_backend)
            )
    except (ValueError, AssertionError) as err:
        # Bad input (ours, or one of upstream's checks): one line that names the flag, no traceback.
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name is None or err.name.split(".")[0] not in GPU_ONLY_MODULES:
            raise
        # OpenRLHF imports vLLM and flash-attn at module level: without the GPU stack a real launch cannot
        # start (a --dry_run can: see above). Say so in one line instead of a traceback.
        print(
            f"{PROG}: error: OpenRLHF cannot start here: module {err.name!r} is missing (a GPU install has "
            "it: pip install -e '.[gpu]', README 'Train on GPUs', or the container docker/run.sh). "
            "DRY_RUN=1 / --dry_run checks a configuration without it.",
            file=sys.stderr,
        )
        return 2
    if ours.dry_run:
        print(json.dumps(to_jsonable(args), indent=1))
    elif no_kernels and not ours.cpu_backend:
        print(
            f"{PROG}: error: flash-attn's CUDA kernels ({kernel_placeholder.MODULE}) are missing: a real launch "
            "needs the GPU install (pip install -e '.[gpu]', README 'Train on GPUs', or docker/run.sh). The "
            "configuration is valid: DRY_RUN=1 / --dry_run prints it.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
