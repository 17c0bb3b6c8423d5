"""``asym-rl``: the project's command line.

Each subcommand lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their subcommand runs, so ``asym-rl advantage-table`` does not pay for transformers.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "advantage-table": (
        "asym_openrlhf.cli.advantage_table",
        "print/plot an estimator's advantages for c = 0..G",
    ),
    "prepare-data": ("asym_openrlhf.data", "write MATH train/validation prompts for the OpenRLHF launcher"),
    "lite": ("asym_openrlhf.lite.train", "single-machine RL training (CPU in minutes, or one GPU)"),
    "study": (
        "asym_openrlhf.lite.study",
        "run several estimators from one start and draw the paper's figures",
    ),
    "rehearse": (
        "asym_openrlhf.cli.rehearse",
        "run a launch script's flags through the whole OpenRLHF loop on this CPU: 2 steps, a kill, a resume",
    ),
    "plot": (
        "asym_openrlhf.cli.plot_runs",
        "draw Fig. 2-5 from OpenRLHF TensorBoard logs or asym-rl lite folders (PNG, SVG, CSV)",
    ),
}


def build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    parser = argparse.ArgumentParser(prog="asym-rl", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = None
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        # Only the chosen subcommand's module is imported (and so only its flags are known).
        if argv and argv[0] == name:
            chosen = importlib.import_module(module_name)
            chosen.add_arguments(sub_parser)
    return parser, chosen


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, module = build_parser(argv)
    args = parser.parse_args(argv)
    if module is None:
        parser.print_help()
        return 2
    try:
        return module.run(args)
    except ValueError as err:
        # Bad input: one line that names what was wrong, no traceback.
        print(f"asym-rl {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
