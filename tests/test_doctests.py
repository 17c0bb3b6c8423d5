"""The examples in the docstrings run and give what they show: every module of both packages that has one
(``>>> ``), except those that need OpenRLHF, vLLM or Ray to import (their examples are covered by their tests)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEEDS_THE_GPU_STACK = ("asym_openrlhf.integration", "asym_openrlhf.cli.train_ppo_ray", "asym_eval.engines")


def modules_with_examples() -> list[str]:
    found = []
    for package, folder in (
        ("asym_openrlhf", ROOT / "asym_openrlhf"),
        ("asym_eval", ROOT / "evaluation" / "asym_eval"),
    ):
        for path in sorted(folder.rglob("*.py")):
            if ">>> " not in path.read_text(encoding="utf-8"):
                continue
            parts = path.relative_to(folder).with_suffix("").parts
            name = ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            if not name.startswith(NEEDS_THE_GPU_STACK):
                found.append(name)
    return found


MODULES = modules_with_examples()


def test_the_pure_modules_have_examples():
    assert {"asym_openrlhf.lite.stats", "asym_eval.options", "asym_openrlhf.algorithms.advantages"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, result
