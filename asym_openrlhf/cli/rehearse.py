"""``asym-rl rehearse [--ranks N] [--out DIR] SCRIPT [flags...]``: a launch script's own flag set, run through the whole OpenRLHF loop on
this CPU for two steps with a save, a kill and a resume, before it spends GPU hours.

What runs is what the script runs: the launcher (``python -m asym_openrlhf.cli.train_ppo_ray``), upstream's
``train()`` in real Ray, vLLM (its CPU build), the DeepSpeed policy ranks with the script's ZeRO stage, dtype,
optimizer, estimator and token controls, our reward file, the weight sync after each step, evaluation,
TensorBoard, DeepSpeed and HF checkpoints. Only what cannot be the same on a CPU is swapped, and a table of every
swap is printed first:

- the model becomes the shipped tiny addition checkpoint, and the data a slice of addition prompts written with
  the script's own input/label keys and datasources (the tiny tokenizer knows 34 characters, not MATH);
- ranks and vLLM engines become ``--ranks`` (2), and the batch sizes shrink by one factor, so that every
  divisibility relation among them holds as it did (each rank keeps >= 2 micro-batches per optimizer step);
- response and prompt lengths fit addition; flash-attn, packing and sleep modes are off; NCCL/CUDA IPC is gloo
  (``--cpu_backend``, asym_openrlhf/integration/cpu_backend.py);
- checkpoints, logs and the final model go to ``--out``; the script's own paths are only checked (writable).

The first launch is killed (SIGKILL, its whole process group) once step 1's checkpoint is complete; the same
command is run again, resumes from it, trains step 2 and writes the final model. Then the run is judged: the
resumed run started at step 2, every step logged once, the weight sync agreed with the policy at every step,
advantages and losses were finite. The last line is the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from asym_openrlhf.lite.tasks import AdditionTask

TINY_MODEL = Path(__file__).resolve().parent.parent / "assets" / "lite_addition"
# The tiny checkpoint's task (asym_openrlhf/assets/README.md): operands 0..99, the same 256 pairs held out.
ADDITION = dict(max_digits=2, heldout_size=256)
RESPONSE_TOKENS = 12  # "\boxed{198}" and EOS: 11 characters, one token each
PROMPT_TOKENS = 16  # "Q:99+99=A:" is 10
EVAL_PROMPTS = 8
LOG_NAME = "rehearsal.log"


@dataclass
class Flags:
    """A launcher command line as ordered (flag, values) pairs; the last occurrence of a flag wins, as upstream."""

    items: list[tuple[str, list[str]]] = field(default_factory=list)

    @classmethod
    def parse(cls, argv: list[str]) -> Flags:
        items: list[tuple[str, list[str]]] = []
        for token in argv:
            if token.startswith("--"):
                items.append((token, []))
            elif items:
                items[-1][1].append(token)
            else:
                raise ValueError(f"the script's command line starts with a value, not a flag: {token!r}")
        return cls(items)

    def get(self, flag: str, default=None):
        values = [values for name, values in self.items if name == flag]
        if not values:
            return default
        return values[-1][0] if len(values[-1]) == 1 else values[-1]

    def has(self, flag: str) -> bool:
        return any(name == flag for name, _ in self.items)

    def set(self, flag: str, *values) -> None:
        self.drop(flag)
        self.items.append((flag, [str(value) for value in values]))

    def drop(self, flag: str) -> None:
        self.items = [(name, values) for name, values in self.items if name != flag]

    def argv(self) -> list[str]:
        return [token for name, values in self.items for token in (name, *values)]


def capture_script_argv(script: Path, extra: list[str], env: dict[str, str]) -> list[str]:
    """The launcher command line ``bash SCRIPT extra...`` would run (its dry-run path, ``ASYM_LAUNCHER``)."""
    if not script.is_file():
        raise ValueError(f"SCRIPT: no such file: {script}")
    capture = f"{shlex.quote(sys.executable)} -m asym_openrlhf.cli.rehearse --print-argv"
    result = subprocess.run(
        ["bash", str(script), *extra],
        env={**env, "DRY_RUN": "1", "ASYM_LAUNCHER": capture},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ValueError(f"SCRIPT: bash {script} failed: {last}")
    argv = json.loads(result.stdout.strip().splitlines()[-1])
    return [token for token in argv if token != "--dry_run"]


def _dp_ranks(flags: Flags) -> int:
    ranks = int(flags.get("--actor.num_nodes", 1)) * int(flags.get("--actor.num_gpus_per_node", 1))
    return ranks // int(flags.get("--ds.ring_attn_size", 1)) // int(flags.get("--ds.tensor_parallel_size", 1))


def scaled_batches(flags: Flags, ranks: int) -> dict[str, int]:
    """The script's batch sizes shrunk by one factor for ``ranks`` data-parallel ranks, every relation kept.

    Kept: samples per prompt, both micro-batch sizes, optimizer steps per rollout step (samples /
    ``--train.batch_size``). The rollout batch is the smallest one for which the samples split evenly into
    rollout micro-batches over the ranks and each rank gets at least two training micro-batches per optimizer
    step (gradient accumulation), so a relation the script breaks stays broken.
    """
    group = int(flags.get("--rollout.n_samples_per_prompt", 1))
    rollout_batch = int(flags.get("--rollout.batch_size", 1024))
    train_batch = int(flags.get("--train.batch_size", 128))
    rollout_micro = int(flags.get("--rollout.micro_batch_size", 8))
    train_micro = int(flags.get("--train.micro_batch_size", 1))
    samples = rollout_batch * group
    optimizer_steps = max(1, samples // train_batch)
    for prompts in range(1, rollout_batch + 1):
        small_samples = prompts * group
        small_train = small_samples // optimizer_steps
        if (
            small_samples % (rollout_micro * ranks) == 0
            and small_train % (train_micro * ranks) == 0
            and small_train // (train_micro * ranks) >= 2
        ):
            return {"--rollout.batch_size": prompts, "--train.batch_size": small_train}
    return {"--rollout.batch_size": rollout_batch, "--train.batch_size": train_batch}


@dataclass
class Plan:
    argv: list[str]  # the launcher's command line for both launches
    swaps: list[tuple[str, str, str]]  # (flag, the script's value, the rehearsal's)
    out: Path
    ckpt_path: Path
    steps: int


def _default(resolved, flag: str) -> str:
    """What an unset flag resolves to (upstream's default), for the table."""
    value = resolved
    for part in flag.lstrip("-").split("."):
        value = getattr(value, part, None)
    return f"({value})"


def _show(value) -> str:
    if value is None:
        return "(unset)"
    if value is True or value == []:
        return "on"
    return " ".join(value) if isinstance(value, list) else str(value)


def _read_first_record(path: Path) -> dict:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    return json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number}: not JSON ({err.msg})") from None
    raise ValueError(f"{path}: empty")


def check_data_file(flag: str, path_text: str | None, keys: list[str]) -> dict:
    """The script's data file exists and its first record has the keys the script reads; return that record."""
    if not path_text:
        raise ValueError(f"{flag}: not set")
    path = Path(path_text)
    if not path.is_file():
        raise ValueError(f"{flag}: no such file: {path} (asym-rl prepare-data writes it)")
    record = _read_first_record(path)
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(f"{flag}: {path}:1 has no key {missing[0]!r} (the script reads {', '.join(keys)})")
    return record


def check_writable(flag: str, path_text: str | None) -> None:
    """The nearest existing folder of ``path_text`` accepts a file (a real launch would create the rest)."""
    if not path_text:
        return
    folder = Path(path_text).absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: {path_text} is not writable ({folder} does not accept new files)")


def check_reward_file(path_text: str | None, sample_prompts: list[str], sample_labels: list[str]) -> None:
    """Import the script's reward file and grade a few addition samples, as upstream would (``reward_func``)."""
    if not path_text or not path_text.endswith(".py"):
        return  # a reward server URL: it is called for real during the run
    import importlib.util
    import traceback

    path = Path(path_text)
    if not path.is_file():
        raise ValueError(f"--reward.remote_url: no such file: {path}")
    try:
        spec = importlib.util.spec_from_file_location("rehearsal_reward", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        queries = [prompt + "\\boxed{0}" for prompt in sample_prompts]
        result = module.reward_func(queries, sample_prompts, sample_labels)
    except Exception as err:  # the cause, in one line, with the reward file's own line
        frames = [frame for frame in traceback.extract_tb(err.__traceback__) if frame.filename == str(path)]
        where = f"{path}:{frames[-1].lineno}" if frames else str(path)
        raise ValueError(f"--reward.remote_url: {where} raised {type(err).__name__}: {err}") from None
    if not isinstance(result, dict) or "rewards" not in result:
        raise ValueError(
            f"--reward.remote_url: {path} reward_func returned no 'rewards' (got {type(result).__name__})"
        )


def write_addition_slice(
    path: Path, problems, input_key: str, label_key: str, datasource: str | None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for problem in problems:
            record = {input_key: problem.prompt, label_key: problem.answer}
            if datasource:
                record["datasource"] = datasource
            handle.write(json.dumps(record) + "\n")


def plan_rehearsal(script_argv: list[str], out: Path, ranks: int) -> Plan:
    """Check what the dry run cannot, then swap what a CPU cannot run; raise ``ValueError`` naming a cause."""
    from asym_openrlhf.cli.train_ppo_ray import resolve_config
    from asym_openrlhf.integration import kernel_placeholder

    kernel_placeholder.install(quiet=True)  # this process only parses; the launches install the CPU backend
    resolved = resolve_config(
        script_argv
    )  # the script's own flags pass the launcher's checks (batch split too)
    flags = Flags.parse(script_argv)
    input_key = flags.get("--data.input_key", "input")
    label_key = flags.get("--data.label_key", None)
    keys = [input_key] + ([label_key] if label_key else [])
    train_record = check_data_file("--data.prompt_dataset", flags.get("--data.prompt_dataset"), keys)
    eval_record = None
    if flags.get("--eval.dataset"):
        eval_record = check_data_file("--eval.dataset", flags.get("--eval.dataset"), keys)
    for flag in ("--ckpt.path", "--ckpt.output_dir", "--logger.tensorboard_dir"):
        check_writable(flag, flags.get(flag))
    task = AdditionTask(**ADDITION)
    check_reward_file(
        flags.get("--reward.remote_url"),
        [p.prompt for p in task.train[:4]],
        [p.answer for p in task.train[:4]],
    )

    swaps: list[tuple[str, str, str]] = []

    def swap(flag: str, *values) -> None:
        before = flags.get(flag, True if flags.has(flag) else _default(resolved, flag))
        flags.set(flag, *values)
        swaps.append((flag, _show(before), _show(list(map(str, values))) if values else "on"))

    def drop(flag: str) -> None:
        if flags.has(flag):
            swaps.append((flag, _show(flags.get(flag, True)), "off"))
            flags.drop(flag)

    batches = scaled_batches(flags, ranks)
    steps = 2
    prompts = batches["--rollout.batch_size"] * steps
    data = out / "data"
    write_addition_slice(
        data / "train.jsonl",
        task.train[:prompts],
        input_key,
        label_key or "label",
        train_record.get("datasource"),
    )
    swap("--actor.model_name_or_path", str(TINY_MODEL))
    swap("--data.prompt_dataset", str(data / "train.jsonl"))
    if eval_record is not None:
        write_addition_slice(
            data / "eval.jsonl",
            task.heldout[:EVAL_PROMPTS],
            input_key,
            label_key or "label",
            eval_record.get("datasource"),
        )
        swap("--eval.dataset", str(data / "eval.jsonl"))
        swap("--eval.steps", 1)
    swap("--data.max_samples", prompts)
    swap("--train.num_episodes", 1)
    swap("--actor.num_nodes", 1)
    swap("--actor.num_gpus_per_node", ranks)
    if int(flags.get("--vllm.num_engines", 0) or 0):
        swap("--vllm.num_engines", ranks)
    for flag, value in batches.items():
        swap(flag, value)
    swap("--rollout.max_new_tokens", RESPONSE_TOKENS)
    swap("--data.max_len", PROMPT_TOKENS + RESPONSE_TOKENS)
    if flags.has("--eval.max_new_tokens"):
        swap("--eval.max_new_tokens", RESPONSE_TOKENS)
    if "flash" in str(flags.get("--ds.attn_implementation", "flash_attention_2")):
        swap("--ds.attn_implementation", "sdpa")
    for flag in ("--ds.packing_samples", "--vllm.enable_sleep", "--ds.enable_sleep", "--vllm.sync_with_ray"):
        drop(flag)
    swap("--vllm.sync_backend", "gloo")
    ckpt = out / "ckpt"
    swap("--ckpt.path", str(ckpt))
    swap("--ckpt.output_dir", str(out / "final"))
    swap("--ckpt.save_steps", 1)
    if not flags.has("--ckpt.load_enable"):
        swap("--ckpt.load_enable")
    swap("--logger.tensorboard_dir", str(out / "tensorboard"))
    for flag in [name for name, _ in flags.items if name.startswith("--logger.wandb")]:
        drop(flag)
    flags.items += [("--cpu_backend", []), ("--asym.check_weight_sync", [])]
    return Plan(flags.argv(), swaps, out, ckpt, steps)


def print_swaps(plan: Plan) -> None:
    width = max(len(flag) for flag, _, _ in plan.swaps)
    print(f"[rehearse] swapped for this CPU ({len(plan.swaps)} flags; everything else is the script's):")
    for flag, before, after in plan.swaps:
        print(f"  {flag:<{width}}  {before}  ->  {after}")
    print("  + --cpu_backend --asym.check_weight_sync")


def _saved_step(ckpt: Path) -> int | None:
    from asym_openrlhf.integration.checkpoints import read_saved_step

    return read_saved_step(ckpt)


def launch(plan: Plan, log, kill_after_step: int | None, timeout_s: float) -> tuple[int, bool]:
    """Run the launcher once, output appended to ``log``; SIGKILL its process group once the checkpoint of
    ``kill_after_step`` is complete. Returns (exit status, killed)."""
    command = [sys.executable, "-m", "asym_openrlhf.cli.train_ppo_ray", *plan.argv]
    log.write(f"\n$ {shlex.join(command)}\n")
    log.flush()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    start = time.monotonic()
    try:
        while process.poll() is None:
            if kill_after_step is not None and (_saved_step(plan.ckpt_path) or 0) >= kill_after_step:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return process.returncode, True
            if time.monotonic() - start > timeout_s:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                raise TimeoutError(f"the launch ran over {timeout_s:.0f} s (a hang?); see {log.name}")
            time.sleep(1.0)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    # Whatever Ray or vLLM left in the group (they outlive a driver that exits early).
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.returncode, False


# Error lines worth naming as the cause of a failed launch, most specific first.
CAUSE = re.compile(r"((?:\w+\.)*\w*(?:Error|Exception)): (.+)$")


def failure_cause(log_path: Path) -> str:
    """The last exception line in a launch's output (Ray re-raises a worker's error in the driver)."""
    cause = None
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = CAUSE.search(line.strip())
        name = match.group(1).rsplit(".", 1)[-1] if match else ""
        if match and not name.startswith("Ray"):
            cause = f"{name}: {match.group(2)}"
    return cause or f"the launcher failed; see {log_path}"


def last_line(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()]
    last = next((line for line in reversed(lines) if line), "(none)")
    return last.rsplit("\r", 1)[-1][-300:]  # a progress bar's last state, not its whole history


def judge(plan: Plan) -> list[str]:
    """What went wrong in a finished rehearsal (empty: nothing)."""
    from asym_openrlhf.cli.plot_runs import read_run, tensorboard_events
    from asym_openrlhf.integration import weight_sync_check

    problems = []
    final = plan.out / "final"
    if not (final / "config.json").is_file():
        problems.append(f"no final model in {final}")
    # Each launch logs to its own folder: a step trained twice (a resume that restarted) appears twice here, a
    # skipped one not at all.
    event_folders = sorted(
        {path.parent for path in (plan.out / "tensorboard").rglob("events.out.tfevents.*")}
    )
    logged = sorted(event.step for event in tensorboard_events(event_folders).get("train/policy_loss", []))
    if logged != list(range(1, plan.steps + 1)):
        problems.append(f"steps trained {logged} over both launches, expected 1..{plan.steps} once each")
    run = read_run(plan.out / "tensorboard")
    for tag, points in run.series.items():
        bad = [
            step for step, value in points.items() if value != value or value in (float("inf"), float("-inf"))
        ]
        if bad and tag.startswith("train/"):
            problems.append(f"{tag} is not finite at step {bad[0]}")
    checks = weight_sync_check.read_records(plan.ckpt_path)
    if sorted({record["global_step"] for record in checks}) != list(range(1, plan.steps + 1)):
        problems.append(f"weight sync checked at steps {[r['global_step'] for r in checks]}, not every step")
    worst = max((record["max_abs_logprob_diff"] for record in checks), default=float("nan"))
    if not worst <= weight_sync_check.DEFAULT_TOLERANCE:
        problems.append(f"vLLM disagrees with the policy after a weight sync: log-prob diff {worst:.3f}")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "script", metavar="SCRIPT", help="a launch script, e.g. examples/scripts/qwen3-4b/train_asymgrpo.sh"
    )
    parser.add_argument(
        "flags",
        nargs=argparse.REMAINDER,
        help="extra flags for the script, appended last as the script appends them (rehearse's own options go "
        "before SCRIPT)",
    )
    parser.add_argument(
        "--ranks", type=int, default=2, help="data-parallel policy ranks (logical GPUs). Default: 2"
    )
    parser.add_argument(
        "--out",
        default=None,
        help="where logs, checkpoints and the final model go. Default: runs/rehearse/<script>",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds one launch may run before it counts as a hang. Default: 900",
    )


def run(args: argparse.Namespace) -> int:
    script = Path(args.script)
    out = Path(args.out or Path("runs") / "rehearse" / script.stem).absolute()
    if args.ranks < 1:
        raise ValueError(f"--ranks: must be at least 1, got {args.ranks}")
    started = time.monotonic()
    script_argv = capture_script_argv(script, args.flags, dict(os.environ))
    if out.exists() and any(out.iterdir()):
        raise ValueError(
            f"--out: {out} is not empty (a rehearsal starts from nothing; remove it or pick another)"
        )
    plan = plan_rehearsal(script_argv, out, args.ranks)
    print_swaps(plan)
    log_path = out / LOG_NAME
    print(f"[rehearse] launch 1: trains step 1, saves it, is killed; output in {log_path}", flush=True)
    with log_path.open("a", encoding="utf-8") as log:
        try:
            status, killed = launch(plan, log, kill_after_step=1, timeout_s=args.timeout)
            if not killed:
                print(f"[rehearse] FAILED: {failure_cause(log_path)}  (log: {log_path})")
                return 1
            print(
                f"[rehearse] killed after the step-1 checkpoint ({time.monotonic() - started:.0f} s); launch 2: "
                "resumes",
                flush=True,
            )
            status, _ = launch(plan, log, kill_after_step=None, timeout_s=args.timeout)
        except TimeoutError as err:  # a hang: say where the run stood
            print(f"[rehearse] FAILED: {err}; its last line: {last_line(log_path)}")
            return 1
    if status != 0:
        print(f"[rehearse] FAILED: {failure_cause(log_path)}  (log: {log_path})")
        return 1
    problems = judge(plan)
    elapsed = time.monotonic() - started
    if problems:
        print(f"[rehearse] FAILED: {'; '.join(problems)}  (log: {log_path})")
        return 1
    print(
        f"[rehearse] PASSED in {elapsed:.0f} s: {plan.steps} steps on {args.ranks} ranks with a kill and a resume, "
        f"weights synced at every step; logs {out / 'tensorboard'}, checkpoints {plan.ckpt_path}, "
        f"final model {out / 'final'}"
    )
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--print-argv"]:
    # The script's dry-run command (ASYM_LAUNCHER), used by capture_script_argv: print the argv it was given.
    print(json.dumps(sys.argv[2:]))
