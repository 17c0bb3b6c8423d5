"""Paired differences between methods of a finished ``asym-rl study``, from its ``summary.json``.

The study judges the paper's claims; this prints any other comparison the same way: for each pair A - B and
each statistic, the mean difference over seeds with its 95% t interval (paired by seed), the two-sided p-value
and the verdict of "A > B" (holds / contradicted / undecided), uncorrected.

    .venv/bin/python scripts/compare_methods.py OUT/summary.json --pairs AsymGRPO-GRPO,AsymGRPO-REINFORCE \
        --statistics val_acc_ema,pass_at_n_end,pass_at_1_end
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "evaluation"),
]

from asym_openrlhf.lite.stats import claim_p_value, difference_interval, verdict  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path, help="a study's summary.json")
    parser.add_argument("--pairs", required=True, help="comma list of A-B (method labels as in the summary)")
    parser.add_argument("--statistics", default="val_acc_ema,pass_at_n_end,pass_at_1_end")
    args = parser.parse_args()
    summary = json.loads(args.summary.read_text(encoding="utf-8"))
    per_seed = summary["per_seed"]
    print("| A − B | statistic | difference [95% interval] | seeds | p | A > B |")
    print("|---|---|---|---|---|---|")
    for pair in args.pairs.split(","):
        a, b = pair.split("-")
        for statistic in args.statistics.split(","):
            for method in (a, b):
                if method not in per_seed or statistic not in per_seed[method]:
                    sys.exit(f"--pairs/--statistics: {args.summary} has no {statistic!r} for {method!r}")
            values = [{int(s): v for s, v in per_seed[m][statistic].items() if v is not None} for m in (a, b)]
            interval = difference_interval(*values)
            p = claim_p_value(interval, ">")
            print(
                f"| {a} − {b} | {statistic} | {interval.mean:+.4f} [{interval.low:+.4f}, {interval.high:+.4f}] | "
                f"{interval.n} | {p:.3g} | {verdict(interval, '>')} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
