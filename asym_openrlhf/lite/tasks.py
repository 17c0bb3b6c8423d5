"""Verifiable tasks for ``asym-rl lite``: prompts, reference answers and a binary reward.

``AdditionTask``: ``Q:47+8=A:`` -> ``\\boxed{55}``; reward 1 when the last ``\\boxed{}`` holds the sum. A fixed
held-out set of operand pairs is never used for warm-up or RL. ``MathTask``: MATH train problems, graded by
``asym_eval.grading.grade_response`` (imported lazily: it pulls in math-verify).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

MATH_TRAIN = Path(__file__).resolve().parent.parent / "data" / "math_train.jsonl"
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
SPLIT_SEED = 1234  # fixes which operand pairs are held out; the same for every run and the checkpoint build


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str  # the exact text the model sees
    answer: str


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (braces balanced), or None."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, index = 0, start + len("\\boxed")
        for index in range(start + len("\\boxed"), len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                return text[start + len("\\boxed{") : index]
        start = text.rfind("\\boxed{", 0, start)
    return None


class AdditionTask:
    """Add two numbers of 1..``max_digits`` digits."""

    name = "addition"

    def __init__(self, max_digits: int, heldout_size: int):
        limit = 10**max_digits
        pairs = [(a, b) for a in range(limit) for b in range(limit)]
        random.Random(SPLIT_SEED).shuffle(pairs)
        if not 0 < heldout_size < len(pairs):
            raise ValueError(f"held-out size must be in (0, {len(pairs)}), got {heldout_size}")
        self.heldout = [self._problem(a, b) for a, b in pairs[:heldout_size]]
        self.train = [self._problem(a, b) for a, b in pairs[heldout_size:]]

    @staticmethod
    def _problem(a: int, b: int) -> Problem:
        return Problem(id=f"{a}+{b}", prompt=f"Q:{a}+{b}=A:", answer=str(a + b))

    @staticmethod
    def target(problem: Problem) -> str:
        """The supervised completion used for warm-up (EOS is added by the caller)."""
        return f"\\boxed{{{problem.answer}}}"

    def reward(self, response: str, problem: Problem) -> float:
        return float(last_boxed(response) == problem.answer)


class MathTask:
    """MATH train problems; the last ``heldout_size`` rows (after a seeded shuffle) are held out."""

    name = "math"

    def __init__(self, tokenizer, heldout_size: int, path: Path = MATH_TRAIN, timeout_s: float = 5.0):
        if not path.exists():
            raise ValueError(f"--task math: {path} not found (run `asym-rl prepare-data` or reinstall)")
        rows = []
        with open(path, encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, 1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{line_number}: not JSON ({err.msg})") from None
                if str(row.get("answer", "")).strip():  # SPEC §5: drop rows with an empty answer
                    rows.append(row)
        random.Random(SPLIT_SEED).shuffle(rows)
        problems = [
            Problem(str(r["id"]), self._format(tokenizer, r["problem"]), str(r["answer"])) for r in rows
        ]
        self.heldout, self.train = problems[:heldout_size], problems[heldout_size:]
        self.timeout_s = timeout_s

    @staticmethod
    def _format(tokenizer, problem: str) -> str:
        """The paper's prompt: chat template when the model has one, else the raw text."""
        content = f"{problem}\n{MATH_INSTRUCTION}"
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
            )
        return content + "\n"

    def reward(self, response: str, problem: Problem) -> float:
        from asym_eval.grading import grade_response

        return float(grade_response(response, problem.answer, timeout_s=self.timeout_s).correct)
