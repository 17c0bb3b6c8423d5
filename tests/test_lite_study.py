"""``asym-rl study`` on a tiny budget produces its figures, table and claim verdicts; reruns skip finished runs."""

from __future__ import annotations

import json
import time

from asym_openrlhf.cli.main import main


def test_study_tiny_budget_writes_figures_and_verdicts(tmp_path, capsys):
    argv = ["study", "--tiny", "--steps", "2", "--seeds", "2", "--eval_every", "2", "--jobs", "1"]
    argv += ["--methods", "REINFORCE,Pos-only,Neg-only", "--output_dir", str(tmp_path)]
    assert main(argv) == 0
    for name in ("fig2_dynamics.png", "fig1c_covariance.png", "summary.md", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["stats"]) == {"REINFORCE", "Pos-only", "Neg-only"}
    assert len(summary["stats"]["Pos-only"]["val_acc_ema"]) == 2  # one value per seed
    # Only the claims whose methods ran are judged, each with one of the three verdicts.
    claims = summary["claims"]
    assert {c["a"] for c in claims} | {c["b"] for c in claims} <= set(summary["stats"])
    assert len(claims) == 6
    assert {c["verdict"] for c in claims} <= {"holds", "weak (within seed noise)", "does not hold"}
    assert "## The paper's claims" in capsys.readouterr().out

    # Finished runs are skipped: a rerun only redraws.
    stamp = (tmp_path / "runs" / "Pos-only_seed0" / "metrics.jsonl").stat().st_mtime
    time.sleep(0.01)
    assert main(argv) == 0
    assert (tmp_path / "runs" / "Pos-only_seed0" / "metrics.jsonl").stat().st_mtime == stamp
