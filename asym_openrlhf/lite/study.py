"""``asym-rl study``: the paper's §3 entropy study on the embedded testbed.

Runs several estimators from the same warm start and seeds with ``asym-rl lite``'s trainer on one task
(``--task addition``, the default, or ``countdown``), then draws Fig. 2 (entropy overall and on correct /
wrong rollouts, held-out accuracy and pass@G, all-/none-solved fractions, distinct correct responses,
log-prob gain of positives) and Fig. 1(c) (Cov(p) over the first 40 steps, or all of a shorter run), and judges the paper's claims
(TAKEAWAY, §3) against the data: each verdict is computed, none is assumed.

Seeds are the unit of replication. Each statistic is computed once per run (``STATISTICS`` defines each over
the run) and reported per method as the mean over seeds with a 95% Student t interval. Each claim "a > b" is
judged by the 95% t interval of the difference a - b, paired by seed: seed s of every method starts from the
same warm start, draws the same prompts in the same order and, at step 1, the same rollouts. The claim
"holds" when that interval excludes 0 on the claimed side, is "contradicted" when it excludes 0 on the other
side, and is "undecided" otherwise. A t interval rather than a bootstrap: with 4-6 seeds, bootstrap
percentiles come from a handful of distinct resamples and come out too narrow.

Runs are independent folders under ``OUTPUT/runs``; a finished run is skipped and a killed one resumes.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

# One atomic write for a run's files and the study's.
from asym_eval.files import check_output_dir

from asym_openrlhf.lite.run_statistics import load_rows
from asym_openrlhf.lite.study_report import report, task_label

# label -> settings overrides (flag dests of ``asym-rl lite``). REINFORCE + entropy regularization takes its
# coefficient from --entropy_coef (default 0.01, ten times the paper's; untuned here, see docs/lite.md).
METHODS = {
    "REINFORCE": dict(advantage_estimator="reinforce_pm1"),
    "GRPO": dict(advantage_estimator="group_norm"),
    "Pos-only": dict(advantage_estimator="pos_only"),
    "Neg-only": dict(advantage_estimator="neg_only"),
    "AsymGRPO": dict(advantage_estimator="main"),
    "EntIncrease": dict(advantage_estimator="ent_increase"),
    "EntDecrease": dict(advantage_estimator="ent_decrease"),
    "REINFORCE+EntReg": dict(
        advantage_estimator="reinforce_pm1", entropy_coef=None
    ),  # coef from --entropy_coef
    # Beyond the paper (Zhu et al. 2025), on request with --methods: REINFORCE with weighted channels.
    "W-REINFORCE": dict(advantage_estimator="w_reinforce"),
    "PSR": dict(advantage_estimator="psr"),
    "NSR": dict(advantage_estimator="nsr"),
    # Beyond the paper: AsymGRPO (0.9, 0.4) with a moving beta, and token-level entropy control.
    "AsymGRPO-sched": dict(
        advantage_estimator="asym_grpo", asym_beta_schedule="linear", asym_beta_pos_end=0.3
    ),  # beta+ 0.9 -> 0.3 over the run
    "AsymGRPO-targetH": dict(
        advantage_estimator="asym_grpo", asym_target_entropy=0.2, asym_adapt_rate=1.0
    ),  # hold entropy near 0.2 nats, about the default model's start
    # verl's ratio 2e-4 is for batches of millions of tokens; ~700 per micro-batch here would give 1 token.
    "Clip-Cov": dict(advantage_estimator="main", cov_mode="clip_cov", cov_ratio=0.02),
    "KL-Cov": dict(advantage_estimator="main", cov_mode="kl_cov", cov_ratio=0.02),
    "Top-entropy": dict(advantage_estimator="main", top_entropy_rho=0.2),
}
# The paper's Section 3 set: what the study runs by default. The rest run on request (--methods).
BEYOND_THE_PAPER = (
    "W-REINFORCE", "PSR", "NSR", "AsymGRPO-sched", "AsymGRPO-targetH", "Clip-Cov", "KL-Cov", "Top-entropy"
)  # fmt: skip
DEFAULT_METHODS = [label for label in METHODS if label not in BEYOND_THE_PAPER]
# Quick: 8 methods x 4 seeds = 32 runs, two at a time. Measured on this 2-core box before the faster step
# loop: 0.72-0.77 s CPU a step, 0.4 s a greedy eval (256 prompts), +0.4 s for pass@k on 32 prompts x G; about
# 35 s a run at 40 steps (9.3 min in all), 25 s (6.7 min) at the 0.5 s a step the faster trainer aims for.
# The full tier also samples n = 64 per held-out prompt at the start and the end, for the pass@k curve.
BUDGETS = {
    "quick": dict(steps=40, seeds=4, eval_every=10, eval_sampled_prompts=32, pass_curve_samples=0),
    "full": dict(steps=200, seeds=6, eval_every=10, eval_sampled_prompts=64, pass_curve_samples=64),
}
_QUICK, _FULL = BUDGETS["quick"], BUDGETS["full"]
STUDY_TASKS = ("addition", "countdown")
GRID_DEFAULTS = {"beta_pos": 0.9, "beta_neg": 0.4}  # the paper's AsymGRPO, where a --grid axis is left out


def grid_label(beta_pos: float, beta_neg: float) -> str:
    """A grid cell's method label and run-folder stem."""
    return f"asym({beta_pos:g},{beta_neg:g})"


def parse_grid(specs: list[str]) -> dict[str, tuple[float, float]]:
    """``["beta_pos=0.3,0.9", "beta_neg=0.4"]`` -> ``{label: (beta_pos, beta_neg)}``, beta+ outer, in order.

    >>> parse_grid(["beta_pos=0.3,0.9"])
    {'asym(0.3,0.4)': (0.3, 0.4), 'asym(0.9,0.4)': (0.9, 0.4)}
    """
    axes: dict[str, list[float]] = {}
    for spec in specs:
        axis, sep, values = spec.partition("=")
        if not sep or axis not in GRID_DEFAULTS:
            raise ValueError(f"--grid: expected beta_pos=V1,V2,... or beta_neg=V1,V2,..., got {spec!r}")
        if axis in axes:
            raise ValueError(f"--grid: {axis} given twice")
        try:
            axes[axis] = [float(v) for v in values.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"--grid: {axis}: not a list of numbers: {values!r}") from None
        if not axes[axis] or not all(0 <= v <= 4 for v in axes[axis]):
            raise ValueError(f"--grid: {axis}: needs values in [0, 4], got {values!r}")
    pos = axes.get("beta_pos", [GRID_DEFAULTS["beta_pos"]])
    neg = axes.get("beta_neg", [GRID_DEFAULTS["beta_neg"]])
    return {grid_label(bp, bn): (bp, bn) for bp in dict.fromkeys(pos) for bn in dict.fromkeys(neg)}


# Tasks with one correct response per prompt: there, distinct / correct responses is solved groups / correct
# rollouts, a function of accuracy, so the claims about distinct correct solutions are not judged.


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task",
        choices=STUDY_TASKS,
        default="addition",
        help="the embedded task: addition (default; one correct answer per prompt) or countdown (many)",
    )
    parser.add_argument(
        "--output_dir",
        default=None,
        help="where runs, figures and the summary go; default outputs/study (addition), outputs/study_<task>",
    )
    parser.add_argument(
        "--budget",
        choices=list(BUDGETS),
        default="quick",
        help=f"quick (default: {_QUICK['steps']} steps x {_QUICK['seeds']} seeds; 8 methods took 4.5 min on 2 "
        f"cores) or full ({_FULL['steps']} steps x {_FULL['seeds']} seeds; 41 min on addition, about 1 h on "
        "Countdown, on 2 cores; resumable)",
    )
    parser.add_argument(
        "--quick", dest="budget", action="store_const", const="quick", help="same as --budget quick"
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated subset of: {', '.join(METHODS)}; default: the paper's {', '.join(DEFAULT_METHODS)} "
        "(none with --grid)",
    )
    parser.add_argument(
        "--grid",
        nargs="+",
        default=None,
        metavar="AXIS=V1,V2,...",
        help="a (beta+, beta-) grid of AsymGRPO runs beside --methods: beta_pos=... beta_neg=... (each in [0, 4]; "
        f"an axis left out stays at the paper's {GRID_DEFAULTS['beta_pos']} / {GRID_DEFAULTS['beta_neg']}); "
        "the report adds a heat map of final accuracy and pass@n with each cell's interval",
    )
    parser.add_argument("--steps", type=int, default=None, help="RL steps per run (overrides the budget's)")
    parser.add_argument(
        "--seeds", type=int, default=None, help="seeds per method, 0..N-1 (overrides the budget's)"
    )
    parser.add_argument(
        "--eval_every", type=int, default=None, help="held-out eval every N steps (overrides the budget's)"
    )
    parser.add_argument(
        "--eval_sampled_prompts",
        type=int,
        default=None,
        help="held-out prompts sampled G times for pass@1 / pass@G at each eval; 0 = off (overrides the "
        f"budget's: {_QUICK['eval_sampled_prompts']} quick, {_FULL['eval_sampled_prompts']} full)",
    )
    parser.add_argument(
        "--pass_curve_samples",
        type=int,
        default=None,
        help="n samples per sampled held-out prompt at step 0 and the end, for pass@k at k = 1, 2, 4, ... n; "
        f"0 = G (overrides the budget's: {_QUICK['pass_curve_samples']} quick, "
        f"{_FULL['pass_curve_samples']} full)",
    )
    parser.add_argument(
        "--entropy_coef",
        type=float,
        default=0.01,
        help="entropy regularization c of REINFORCE+EntReg; default 0.01",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="use the quick-tier model (one-digit addition): smoke tests only"
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="runs in parallel, one torch thread each; default 2"
    )


# --- the command -----------------------------------------------------------------------------------------


def _run_one(job: tuple[str, dict]) -> tuple[str, dict]:
    from asym_openrlhf.lite.train import default_settings, train

    label, overrides = job
    return label, train(default_settings(**overrides), progress=False)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from asym_openrlhf.lite.train import default_settings

    budget = BUDGETS[args.budget]

    def pick(value, key):
        return budget[key] if value is None else value

    steps, seeds = pick(args.steps, "steps"), pick(args.seeds, "seeds")
    eval_every, eval_sampled, curve_samples = (
        pick(args.eval_every, "eval_every"),
        pick(args.eval_sampled_prompts, "eval_sampled_prompts"),
        pick(args.pass_curve_samples, "pass_curve_samples"),
    )
    grid = parse_grid(args.grid) if args.grid else {}
    method_list = args.methods if args.methods is not None else ("" if grid else ",".join(DEFAULT_METHODS))
    methods = [m.strip() for m in method_list.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not (methods or grid):
        raise ValueError(
            f"--methods: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(METHODS)}"
        )
    method_settings = {label: dict(METHODS[label]) for label in methods}
    for label, (beta_pos, beta_neg) in grid.items():
        method_settings[label] = dict(
            advantage_estimator="asym_grpo", asym_beta_pos=beta_pos, asym_beta_neg=beta_neg
        )
    methods = list(method_settings)
    for flag, value in (
        ("--steps", steps),
        ("--seeds", seeds),
        ("--eval_every", eval_every),
        ("--jobs", args.jobs),
    ):
        if value < 1:
            raise ValueError(f"{flag}: must be >= 1")
    if eval_sampled < 0:
        raise ValueError("--eval_sampled_prompts: must be >= 0")
    if curve_samples < 0:
        raise ValueError("--pass_curve_samples: must be >= 0")
    if args.entropy_coef < 0:
        raise ValueError("--entropy_coef: must be >= 0")
    if args.tiny and args.task != "addition":
        raise ValueError(
            f"--tiny: the quick-tier model is one-digit addition only; drop --tiny for --task {args.task}"
        )
    out = check_output_dir(
        args.output_dir or ("outputs/study" if args.task == "addition" else f"outputs/study_{args.task}"),
        "--output_dir",
    )
    jobs = []
    # Seed-major: a study stopped early has every method at its first seeds, which pair.
    for seed in range(seeds):
        for label in methods:
            overrides = dict(method_settings[label])
            if "entropy_coef" in overrides:
                overrides["entropy_coef"] = args.entropy_coef
            overrides.update(
                task=args.task,
                steps=steps,
                seed=seed,
                eval_every=eval_every,
                eval_sampled_prompts=eval_sampled,
                pass_curve_samples=curve_samples,
                save_every=10,
                quick=args.tiny,
                threads=1,
                output_dir=str(out / "runs" / f"{label}_seed{seed}"),
            )
            jobs.append((label, overrides))
    probe = default_settings(**jobs[0][1])  # validates the settings and gives the batch shape for the note
    if not (Path(probe.model) / "config.json").is_file():
        raise ValueError(f"--task: no warm-start checkpoint for {args.task} at {probe.model}")
    (out / "runs").mkdir(parents=True, exist_ok=True)
    if args.jobs == 1:
        results = map(_run_one, jobs)
    else:
        context = get_context(
            "spawn"
        )  # a clean interpreter per worker: no torch thread pools inherited by fork
        pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=context)
        results = pool.map(_run_one, jobs)
    for _ in tqdm(results, total=len(jobs), desc="study runs", unit="run"):
        pass
    if args.jobs > 1:
        pool.shutdown()
    rows_by_run = {
        label: {s: load_rows(out / "runs" / f"{label}_seed{s}") for s in range(seeds)} for label in methods
    }
    title = task_label(args.task, args.tiny)
    sampled_prompts = min(eval_sampled, probe.heldout_size)
    sampled = (
        f"pass@1 / pass@{probe.group_size} from G samples on the first {sampled_prompts} of them"
        if eval_sampled
        else "pass@k off"
    )
    note = (
        f"Task: {title}; model: {Path(probe.model).name} ({probe.tier} tier); {steps} steps × {seeds} seeds "
        f"(0..{seeds - 1}) per method; {probe.prompts_per_step} prompts × G = {probe.group_size}, "
        f"{probe.mini_batches} mini-batches, "
        f"lr {probe.lr:g}, clip {probe.eps_low:g}/{probe.eps_high:g}, {probe.loss_agg} loss; held-out greedy "
        f"eval on {probe.heldout_size} prompts at step 0 and every {eval_every} steps, {sampled}; "
        f"REINFORCE+EntReg c = {args.entropy_coef}."
    )
    text = report(out, rows_by_run, note, group_size=probe.group_size, task=args.task, title=title, grid=grid)
    print(text)
    return 0
