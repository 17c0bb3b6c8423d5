"""The README stays true to the code: its metrics table, its estimators, its two set-up commands."""

import re
from pathlib import Path

from asym_openrlhf.algorithms.advantages import ESTIMATORS
from asym_openrlhf.algorithms.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_metrics_table_is_the_metrics_registry():
    block = README.split("<!-- metrics-table:start -->")[1].split("<!-- metrics-table:end -->")[0]
    rows = re.findall(r"^\| `([^`]+)` \| (.+) \|$", block, flags=re.MULTILINE)
    assert dict(rows) == METRICS


def test_every_estimator_is_documented():
    for name in ESTIMATORS:
        assert f"`{name}`" in README, name


def test_ci_runs_the_readme_test_command():
    commands = re.findall(
        r"```bash\n(.+?)\n```", README.split("## Quick start")[1].split("\n## ")[0], re.DOTALL
    )
    assert len(commands) == 2, commands
    main_job, test_command = commands
    assert main_job.startswith("bash scripts/setup_env.sh && ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command in ci.splitlines()


def test_linked_files_exist():
    for link in re.findall(r"\]\(((?:docs|docker)/[^)#]+)\)", README):
        assert (ROOT / link).exists(), link
