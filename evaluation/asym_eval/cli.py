"""``asym-eval``: Avg@k evaluation of a model on the paper's five math benchmarks (or your own).

asym-eval run    --model DIR --benchmarks math500,aime24,... --output_dir OUT
asym-eval grade  --input F.jsonl --output G.jsonl
asym-eval regrade OUT   (grade a run folder's saved responses again with this grader)
asym-eval select --checkpoints RUN/ckpt [--final RUN/final] --benchmarks ... --output_dir OUT
asym-eval plot   --runs NAME=OUT ... --output bars.png [--pass_curve]  |  --sweep SELECT_OUT --output sweep.png
asym-eval table  --runs NAME=OUT ... [--paper] [--format md|csv|latex]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from asym_eval.generation import BackendOptions, GenerationError
from asym_eval.grading import DEFAULT_TIMEOUT_S
from asym_eval.options import add_flags, declared, dest_of, from_args
from asym_eval.scoring import PAPER_BENCHMARKS

ALL_BENCHMARKS = ",".join(PAPER_BENCHMARKS)


def _positive_float():
    # argparse prefixes the message with "argument --FLAG:".
    def convert(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (math.isfinite(value) and value > 0):  # nan compares false with everything: test it by name
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value

    return convert


def _positive_int():
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
        return value

    return convert


def _add_grading_flags(parser):
    parser.add_argument(
        "--workers",
        type=_positive_int(),
        default=None,
        help="grading processes, >= 1 (default: one per CPU core)",
    )
    parser.add_argument(
        "--timeout_s",
        type=_positive_float(),
        default=DEFAULT_TIMEOUT_S,
        help=f"time limit per graded pair, seconds; past it (+1 s grace) the worker is killed (default {DEFAULT_TIMEOUT_S})",
    )


def _add_generation_flags(parser, benchmarks_default=ALL_BENCHMARKS):
    parser.add_argument(
        "--benchmarks",
        default=benchmarks_default,
        help=f"comma list of {ALL_BENCHMARKS}, or NAME=PATH.jsonl for your own (fields problem, answer) (default: {benchmarks_default})",
    )
    parser.add_argument(
        "--n",
        action="append",
        metavar="K|NAME=K",
        help="samples per problem (the k of Avg@k): K for all, NAME=K for one, repeatable "
        "(default: the paper's, 5 for math500/olympiadbench, 10 for aime24/aime25/amc23, 1 for custom files)",
    )
    parser.add_argument(
        "--backend",
        choices=["vllm", "hf", "openai"],
        default=None,
        help="vllm (the default where it is installed), hf (transformers generate, several prompts per call) "
        "or openai (a served model: --base_url, --served_model)",
    )
    from asym_eval.harness import RunConfig

    add_flags(parser, RunConfig, defaults=True)  # the backend's options and the generation's, as declared
    _add_grading_flags(parser)


def _check_backend_flags(args, backend: str) -> None:
    """A flag that only another backend reads (``backend`` in its declaration), away from its default, is refused."""
    for f in declared(BackendOptions):
        owner = f.metadata["backend"]
        if owner and backend != owner and getattr(args, dest_of(f)) != f.default:
            raise ValueError(
                f"{f.metadata['flag']}: only with --backend {owner} (this run's backend is {backend})"
            )
    if backend == "openai":
        for flag in ("base_url", "served_model"):
            if not getattr(args, flag):
                raise ValueError(f"--{flag}: required with --backend openai")
        if not args.base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"--base_url: expected http://HOST:PORT/v1 or https://..., got {args.base_url!r}"
            )
        from asym_eval.served import api_key

        api_key(args.api_key_env)  # a missing key is refused now, not after the model folder is read


def _run_config(
    args, model: str, output_dir: str, benchmarks: str | None = None, run_name: str | None = None
):
    from asym_eval.benchmarks import parse_benchmark_spec
    from asym_eval.generation import vllm_available
    from asym_eval.harness import RunConfig, parse_n

    from_args(
        RunConfig, args, model=model, benchmarks=args.benchmarks, output_dir=output_dir
    )  # declared ranges
    backend = args.backend or ("vllm" if vllm_available() else "hf")
    _check_backend_flags(args, backend)
    benchmarks = benchmarks or args.benchmarks
    # --n is checked against all of --benchmarks, then cut to this run's (select runs one benchmark first).
    all_n = parse_n(args.n, [name for name, _ in parse_benchmark_spec(args.benchmarks)])
    names = [name for name, _ in parse_benchmark_spec(benchmarks)]
    return RunConfig(
        model=model,
        benchmarks=benchmarks,
        output_dir=output_dir,
        n={name: all_n.get(name, parse_n(None, [name])[name]) for name in names},
        backend=backend,
        **{f.name: getattr(args, dest_of(f)) for f in declared(RunConfig)},
        workers=args.workers,
        timeout_s=args.timeout_s,
        run_name=run_name,
    )


def cmd_run(args) -> int:
    from asym_eval.harness import run_evaluation

    run_evaluation(_run_config(args, args.model, args.output_dir))
    return 0


def _read_pairs(path: str, boxed_only: bool = False):
    """The pairs of ``--input`` and the number of blank lines skipped; an error names FILE:LINE."""
    from asym_eval.files import read_jsonl
    from asym_eval.grading import GradeRequest

    lines, blank = read_jsonl(path)
    rows, requests = [], []
    for line_number, row in lines:
        try:
            tolerance = None if row.get("error") in (None, "") else float(row["error"])
            request = GradeRequest(
                str(row["response"]),
                str(row["answer"]),
                bool(row.get("is_multiple_answer", False)),
                tolerance,
                boxed_only,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"{path}:{line_number}: need JSON with 'response' and 'answer', 'error' a number ({err})"
            ) from None
        rows.append(row)
        requests.append(request)
    return rows, requests, blank


def cmd_grade(args) -> int:
    from asym_eval.files import check_output_file, write_atomic
    from asym_eval.pool import GradingPool

    if not Path(args.input).is_file():
        raise ValueError(f"--input: no such file {args.input}")
    check_output_file(args.output, "--output")  # before the grading, not after it
    with GradingPool(args.workers, args.timeout_s) as pool:  # its processes start while the input is read
        rows, requests, blank = _read_pairs(args.input, args.boxed_only)
        results = pool.grade(requests)
    for row, result in zip(rows, results):
        row.update(correct=result.correct, extracted=result.extracted, reason=result.reason)
    write_atomic(args.output, "".join(json.dumps(row) + "\n" for row in rows))
    correct = sum(result.correct for result in results)
    skipped = (
        f" ({blank} blank input lines skipped: output line i is the i-th non-blank input line)"
        if blank
        else ""
    )
    print(
        f"graded {len(results)} pairs: {correct} correct ({100.0 * correct / max(1, len(results)):.2f}%) "
        f"-> {args.output}{skipped}"
    )
    return 0


def cmd_regrade(args) -> int:
    from asym_eval.harness import regrade
    from asym_eval.pool import GradingPool

    if not (Path(args.output_dir) / "config.json").is_file():
        raise ValueError(f"OUT: {args.output_dir} has no config.json (not a folder written by asym-eval run)")
    with GradingPool(args.workers, args.timeout_s) as pool:
        regrade(Path(args.output_dir), args.benchmarks, pool)
    return 0


def cmd_select(args) -> int:
    from asym_eval.select import select_checkpoint

    select_checkpoint(args, _run_config)
    return 0


def cmd_plot(args) -> int:
    from asym_eval.files import check_output_file
    from asym_eval.plots import plot_pass_curves, plot_runs, plot_sweep

    if bool(args.runs) == bool(args.sweep):
        raise ValueError("plot: give either --runs NAME=OUT ... or --sweep SELECT_OUT")
    if args.pass_curve and not args.runs:
        raise ValueError("--pass_curve: draws run outputs; give --runs NAME=OUT ...")
    check_output_file(args.output, "--output")
    if args.pass_curve:
        plot_pass_curves(args.runs, args.output)
    elif args.runs:
        for pair in plot_runs(args.runs, args.output):
            print(f"note: {pair} was not evaluated; drawn as n/a")
    else:
        plot_sweep(args.sweep, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_table(args) -> int:
    from asym_eval.table import table

    print(table(args.runs, args.format, args.paper))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asym-eval", description=__doc__.splitlines()[0].replace("``", ""))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="generate, grade and score one model (resumable)")
    run.add_argument("--model", required=True, help="model directory (Hugging Face format)")
    run.add_argument("--output_dir", required=True, help="where samples.jsonl, summary.json, table.md go")
    _add_generation_flags(run)
    run.set_defaults(handler=cmd_run)

    grade = sub.add_parser("grade", help="grade a JSONL of (response, answer) pairs")
    grade.add_argument(
        "--input",
        required=True,
        help="JSONL with 'response' and 'answer' (optional is_multiple_answer, error)",
    )
    grade.add_argument(
        "--output", required=True, help="the input lines with correct, extracted, reason added"
    )
    grade.add_argument(
        "--boxed_only",
        action="store_true",
        help="strict mode: only the last \\boxed{} counts (default: also where math-verify's own extraction "
        "finds the answer: several boxes, 'The final answer is ...', the last expression)",
    )
    _add_grading_flags(grade)
    grade.set_defaults(handler=cmd_grade)

    regrade = sub.add_parser(
        "regrade", help="grade a run folder's saved responses again with this grader (no generation)"
    )
    regrade.add_argument(
        "output_dir",
        metavar="OUT",
        help="a folder written by asym-eval run; its samples and summaries are rewritten",
    )
    regrade.add_argument(
        "--benchmarks",
        default=None,
        help="the run's --benchmarks, needed for files of your own (NAME=PATH.jsonl; default: the names in "
        "OUT/config.json); each file must be the one the samples were made from",
    )
    _add_grading_flags(regrade)
    regrade.set_defaults(handler=cmd_regrade)

    select = sub.add_parser(
        "select", help="score every checkpoint on one benchmark, evaluate the best on all"
    )
    select.add_argument(
        "--checkpoints",
        required=True,
        help="folder whose subfolders are checkpoints (names carry the step; global_step<N>_hf and "
        "best_global_step<N>_hf of one step are the same weights and are scored once)",
    )
    select.add_argument(
        "--final",
        default=None,
        metavar="DIR",
        help="also score the run's final policy (--ckpt.output_dir, e.g. RUN/final) at the step in its "
        "asym_final_step.json, written by the trainer; a step that also has a checkpoint folder is scored once "
        "(default: not scored; select prints a note when a final/ holding that file sits beside --checkpoints)",
    )
    select.add_argument(
        "--output_dir",
        required=True,
        help="one run folder per step scored (OUT/<checkpoint>, OUT/final_step<N>), plus selection.json/.md",
    )
    select.add_argument(
        "--select_on", default="math500", help="benchmark that picks the checkpoint (paper: math500)"
    )
    _add_generation_flags(select)
    select.set_defaults(handler=cmd_select)

    plot = sub.add_parser("plot", help="bar chart of several runs, or accuracy against training step")
    plot.add_argument(
        "--runs", nargs="+", metavar="NAME=OUT", help="run folders (from asym-eval run) to compare"
    )
    plot.add_argument("--sweep", help="folder written by asym-eval select")
    plot.add_argument(
        "--pass_curve",
        action="store_true",
        help="with --runs: unbiased pass@k against k (1, 2, 4, ... up to the samples) per benchmark, a CSV "
        "beside each image; one image per benchmark (OUTPUT_<benchmark>) when there are several",
    )
    plot.add_argument("--output", required=True, help="image file to write (.png, .pdf, .svg)")
    plot.set_defaults(handler=cmd_plot)

    table = sub.add_parser("table", help="Table 1 across run/select outputs, optionally beside the paper's")
    table.add_argument(
        "--runs",
        nargs="+",
        required=True,
        metavar="NAME=OUT",
        help="folders written by asym-eval run or select (select: its winner); a NAME that is a Table 1 row "
        "(asymgrpo, grpo, base, ...) is compared with the paper's row by --paper",
    )
    table.add_argument(
        "--paper", action="store_true", help="beside each cell, the paper's number and ours minus it"
    )
    table.add_argument(
        "--format", choices=["md", "csv", "latex"], default="md", help="output format (default md)"
    )
    table.set_defaults(handler=cmd_table)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, GenerationError) as err:
        print(f"asym-eval {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
