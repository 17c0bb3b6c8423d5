"""``asym-rl prepare-data``: MATH train and MATH-500 as the prompt/label JSONL the OpenRLHF launcher reads.

Each output line is ``{"prompt", "label", "datasource", "id"}``: ``prompt`` is already chat-templated (SPEC §6:
the problem, a blank line, then "Please reason step by step, and put your final answer within \\boxed{}.",
as the model's user turn, in non-thinking mode for Qwen3), so launch scripts pass
``--data.input_key prompt --data.label_key label`` and *not* ``--data.apply_chat_template`` (OpenRLHF's
templating cannot switch Qwen3's thinking off). ``datasource`` names the eval metric (``eval_math500_pass1``).

Inputs ship with the code: MATH train in ``asym_openrlhf/data/`` (the 2 rows with an empty answer dropped),
MATH-500 from the evaluation harness (``asym_eval/data/math500.jsonl``). Outputs are written atomically.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import tempfile
from pathlib import Path

from asym_eval.files import check_output_dir, read_jsonl
from tqdm import tqdm

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
TRAIN_FILE = Path(__file__).parent / "data" / "math_train.jsonl"
TRAIN_OUTPUT, VALIDATION_OUTPUT = "math_train.jsonl", "math500.jsonl"


def default_validation_file() -> Path:
    return Path(str(importlib.resources.files("asym_eval").joinpath("data", "math500.jsonl")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tokenizer",
        required=True,
        help="local path (or cached hub name) of the model whose chat template formats the prompts, e.g. the "
        "Qwen3-4B or Qwen2.5-Math-1.5B folder; nothing is downloaded",
    )
    parser.add_argument("--output_dir", required=True, help="folder for math_train.jsonl and math500.jsonl")
    parser.add_argument("--train_file", default=str(TRAIN_FILE), help="MATH train JSONL (default: shipped)")
    parser.add_argument(
        "--validation_file",
        default=None,
        help="MATH-500 JSONL (default: the evaluation harness's copy, asym_eval/data/math500.jsonl)",
    )
    parser.add_argument(
        "--max_train", type=int, default=None, help="keep only the first N training problems (smoke tests)"
    )


def read_problems(path: Path) -> list[dict]:
    """Rows with ``problem`` and ``answer``; bad lines (not UTF-8, not JSON, fields missing) are refused naming
    file and line; a byte-order mark is tolerated."""
    rows = []
    for line_number, row in read_jsonl(path)[0]:
        if not isinstance(row.get("problem"), str) or "answer" not in row:
            raise ValueError(f"{path}:{line_number}: needs string 'problem' and an 'answer'")
        rows.append(row)
    return rows


def user_message(problem: str) -> str:
    return f"{problem.strip()}\n\n{INSTRUCTION}"


def chat_prompt(tokenizer, problem: str) -> str:
    """The user turn through the model's chat template, ending with the assistant's opening, as OpenRLHF's
    ``--data.apply_chat_template`` does; ``enable_thinking=False`` is Qwen3's non-thinking mode (other
    templates ignore it)."""
    messages = [{"role": "user", "content": user_message(problem)}]
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
    )


def prompt_rows(rows: list[dict], tokenizer, datasource: str) -> tuple[list[dict], int]:
    """Output rows and how many inputs were dropped for an empty answer."""
    kept = [row for row in rows if str(row["answer"]).strip()]
    out = [
        {
            "prompt": chat_prompt(tokenizer, row["problem"]),
            "label": str(row["answer"]),
            "datasource": datasource,
            "id": row.get("id"),
        }
        for row in tqdm(kept, desc=f"prepare {datasource}", unit="problem")
    ]
    return out, len(rows) - len(kept)


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def load_tokenizer(name_or_path: str):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"--tokenizer: cannot load {name_or_path!r} from disk ({type(err).__name__})"
        ) from None
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"--tokenizer: {name_or_path!r} has no chat template")
    return tokenizer


def run(args: argparse.Namespace) -> int:
    output_dir = check_output_dir(args.output_dir, "--output_dir")
    tokenizer = load_tokenizer(args.tokenizer)
    validation_file = Path(args.validation_file) if args.validation_file else default_validation_file()
    for flag, path in (("--train_file", Path(args.train_file)), ("--validation_file", validation_file)):
        if not path.is_file():
            raise ValueError(f"{flag}: no such file {path}")

    train_rows = read_problems(Path(args.train_file))[: args.max_train]
    train, dropped = prompt_rows(train_rows, tokenizer, "math_train")
    validation, _ = prompt_rows(read_problems(validation_file), tokenizer, "math500")
    write_jsonl_atomic(output_dir / TRAIN_OUTPUT, train)
    write_jsonl_atomic(output_dir / VALIDATION_OUTPUT, validation)
    print(
        f"wrote {len(train)} training prompts ({dropped} with an empty answer dropped) to "
        f"{output_dir / TRAIN_OUTPUT} and {len(validation)} validation prompts to {output_dir / VALIDATION_OUTPUT}"
    )
    return 0
