"""What the tests share, built once per session: the tiny evaluation model and a chat tokenizer.
Plain helpers (``read_rows`` for JSON lines) are in ``shared.py``.

Tests that start vLLM, Ray, servers, containers or training runs are marked ``slow`` (module-level
``pytestmark`` or per test); ``bash scripts/run_tests.sh --fast`` runs the rest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # upstream_support, cpu_loop_support


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: starts vLLM, Ray, a server, a container or a training run (skipped by --fast)"
    )


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The evaluation harness's tiny addition model (``asym_eval.tiny_model``), in Hugging Face format.
    Shared: tests read it, none writes into it."""
    from asym_eval.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def chat_tokenizer(tmp_path_factory) -> str:
    """A character-level tokenizer with a chat template (``upstream_support.tiny_chat_tokenizer``)."""
    import upstream_support

    return upstream_support.tiny_chat_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer")
