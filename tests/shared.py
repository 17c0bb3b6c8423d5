"""Plain helpers the tests share (importable: ``tests/`` is on ``sys.path``, see ``conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path


def read_rows(path) -> list[dict]:
    """Every line of a JSON-lines file, parsed."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]
