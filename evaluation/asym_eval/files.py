"""Reading the files a user gives and writing the ones we make: one place for both, used by ``asym-eval``
and ``asym-rl``.

* ``read_jsonl``: JSON lines with one-line errors that name FILE:LINE (a non-UTF-8 byte, a malformed line),
  a UTF-8 byte-order mark tolerated, blank lines counted but skipped.
* ``write_atomic``: a file appears whole or not at all (written beside it, then renamed).
* ``check_output_file`` / ``check_output_dir``: an output path is checked before the work starts, so a
  mistyped path never costs the results of a long run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# Beside a policy saved at the end of training: {"global_step": N}. AsymPPOTrainer writes it (asym_openrlhf's
# integration/checkpoints.py), `asym-eval select --final` reads it; both take the name from here.
FINAL_MARKER = "asym_final_step.json"


def write_atomic(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` through ``path.tmp`` and a rename: a kill leaves the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no stray .tmp beside a file that was not written
        raise


def read_jsonl(path: Path | str) -> tuple[list[tuple[int, dict]], int]:
    """``[(line_number, object)]`` for every non-blank line of ``path``, and the number of blank lines skipped.

    Errors are one ``ValueError`` naming ``FILE:LINE``: a byte that is not UTF-8, a line that is not JSON, a
    line whose JSON is not an object. A byte-order mark at the start is dropped (editors on Windows write one).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = p.write_bytes(b'\\xef\\xbb\\xbf{"a": 1}\\n\\n{"a": 2}\\n')
    >>> read_jsonl(p)
    ([(1, {'a': 1}), (3, {'a': 2})], 1)
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file's final newline ends the last line; it opens no blank one
    rows, blank = [], 0
    for line_number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path}:{line_number}: not UTF-8 (byte 0x{line[err.start]:02x} at column {err.start + 1})"
            ) from None
        if not text.strip():
            blank += 1
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            # err.lineno is the decoder's line within this one line (always 1): report the file's only.
            raise ValueError(f"{path}:{line_number}: not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
        rows.append((line_number, row))
    return rows, blank


def check_output_file(path: Path | str, flag: str) -> Path:
    """Refuse, in one line naming ``flag``, an output file that cannot be written: a folder, or a path under a
    missing folder or under a file. Checked before any work starts."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{flag}: {path} is a folder; give a file name")
    parent = path.parent
    if not parent.exists():
        raise ValueError(f"{flag}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ValueError(f"{flag}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"{flag}: cannot write into {parent}")
    return path


def check_output_dir(path: Path | str, flag: str) -> Path:
    """Refuse, in one line naming ``flag``, an output folder that is a file or lies under one (it is made
    later, by the command, where it is missing)."""
    path = Path(path)
    for ancestor in (path, *path.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                where = "is a file" if ancestor == path else f"lies under {ancestor}, a file"
                raise ValueError(f"{flag}: {path} {where}; give a folder")
            if not os.access(ancestor, os.W_OK):
                raise ValueError(f"{flag}: cannot write into {ancestor}")
            break
    return path


# The weight files transformers and vLLM load (sharded ones come with an index file of the same stem).
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")


def check_model_dir(path: Path | str, flag: str, need_weights: bool = True) -> Path:
    """Refuse, in one line naming ``flag``, a folder that is not a Hugging Face model: no config.json, or (with
    ``need_weights``) no weight file, where transformers would raise a long ``OSError`` at load time."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{flag}: {path} is not a Hugging Face model folder (no config.json)")
    if need_weights and not any(next(path.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        raise ValueError(
            f"{flag}: {path} has a config.json but no weights ({', '.join(WEIGHT_PATTERNS)}); "
            "was the save interrupted, or is this a tokenizer-only folder?"
        )
    return path
