"""The paper's Table 1 (Qwen3-4B, Avg@k in %, SPEC §6), the one copy in the code.

Rows are keyed by the launch script's row name (``examples/scripts/qwen3-4b/train_<row>.sh``; ``base`` is the
untrained model); ``docs/reproduce.md`` prints the same numbers and a test keeps the two equal. Avg is the
paper's printed mean of the five, which it took over unrounded numbers (each side may be off by 0.005).
"""

from __future__ import annotations

# Column order of Table 1: the keys of asym_eval.scoring.PAPER_BENCHMARKS.
TABLE1_COLUMNS = ("math500", "aime24", "aime25", "amc23", "olympiadbench")

# row -> (the paper's method name, (MATH-500, AIME24, AIME25, AMC23, Olympiad), Avg)
TABLE1: dict[str, tuple[str, tuple[float, ...], float]] = {
    "base": ("Qwen3-4B (base)", (81.60, 21.67, 20.00, 63.75, 47.52), 46.91),
    "reinforce": ("REINFORCE", (86.60, 28.67, 24.67, 73.75, 54.86), 53.71),
    "grpo": ("GRPO", (88.20, 31.00, 27.33, 78.25, 57.74), 56.50),
    "grpo_entropy_reg": ("GRPO + entropy reg.", (88.20, 38.33, 28.33, 75.50, 57.24), 57.52),
    "grpo_clip_higher": ("GRPO + clip-higher", (90.07, 34.67, 32.33, 78.50, 58.18), 58.75),
    "grpo_entropy_adv": ("GRPO + entropy adv.", (86.73, 32.00, 25.33, 77.25, 54.46), 55.16),
    "dr_grpo": ("Dr.GRPO", (88.87, 36.33, 30.00, 78.25, 57.24), 58.14),
    "pass_at_k": ("Pass@K training", (86.33, 27.67, 31.00, 74.00, 55.06), 54.81),
    "pos_only": ("Pos-only", (87.13, 27.33, 28.00, 76.75, 57.34), 55.31),
    "neg_only": ("Neg-only", (87.00, 26.00, 27.00, 78.00, 54.46), 54.49),
    "ent_increase": ("EntIncrease", (85.60, 26.00, 23.33, 71.75, 53.03), 51.94),
    "ent_decrease": ("EntDecrease", (83.73, 25.00, 23.67, 71.50, 50.74), 50.93),
    "asymgrpo_symmetric": ("AsymGRPO (β+ = β−)", (88.53, 32.00, 29.33, 78.50, 57.34), 57.14),
    "asymgrpo": ("AsymGRPO", (89.33, 39.33, 28.67, 81.00, 58.48), 59.36),
    "asymgrpo_clip_higher": ("AsymGRPO + clip-higher", (89.73, 33.67, 36.00, 83.25, 58.93), 60.32),
}

# The evaluation protocol behind those numbers (SPEC §6): what a row is compared against.
PAPER_TEMPERATURE = 0.4
PAPER_TOP_P = 1.0
PAPER_PROMPT_FORMAT = "chat"


def paper_row(name: str) -> str | None:
    """The Table 1 row a run NAME stands for: a row key (``asymgrpo``) or the paper's method name, any case.

    >>> paper_row("AsymGRPO + clip-higher"), paper_row("grpo"), paper_row("mine")
    ('asymgrpo_clip_higher', 'grpo', None)
    """
    wanted = name.strip().lower()
    for key, (method, _, _) in TABLE1.items():
        if wanted in (key, method.lower()):
            return key
    return None
