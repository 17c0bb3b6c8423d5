"""Verifiable tasks for ``asym-rl lite``: prompts, reference answers and a binary reward.

``AdditionTask``: ``Q:47+8=A:`` -> ``\\boxed{55}``; reward 1 when the last ``\\boxed{}`` holds the sum. A fixed
held-out set of operand pairs is never used for warm-up or RL. ``CountdownTask``: ``Q:3,7,9=30A:`` ->
``\\boxed{3*7+9}`` (or ``\\boxed{9+7*3}``, ...); many expressions are correct, parsed exactly without ``eval``.
``MathTask``: MATH train problems, graded by
``asym_eval.grading.grade_response`` (imported lazily: it pulls in math-verify).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
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


# --- Countdown: reach a target from a few small numbers; many expressions are correct ---------------------

COUNTDOWN_OPERATORS = "+-*/"
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
ATOM = 3  # precedence of a number or a parenthesized expression
NUMBER = re.compile(r"[0-9]+")
MAX_EXPRESSION_CHARS = 64  # longer boxed text is malformed (bounds parse time and nesting depth)


def _apply(operator: str, left: Fraction, right: Fraction) -> Fraction:
    """One operation, exactly; division by zero raises ``ZeroDivisionError``."""
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    return left / right


def evaluate_countdown(text: str, numbers: tuple[int, ...]) -> Fraction:
    """Value of ``text``, an expression over ``numbers`` (each at most once) with ``+ - * /`` and parentheses.

    Grammar (recursive descent, no ``eval``): ``expr := term (('+'|'-') term)*``,
    ``term := factor (('*'|'/') factor)*``, ``factor := NUMBER | '(' expr ')'``. A NUMBER is written without
    leading zeros and must be one of the given numbers not used yet. There is no unary minus or plus, no
    ``**``, no spaces and no other character. Raises ``ValueError`` for malformed text or a number not
    available, ``ZeroDivisionError`` for a division by zero.

    >>> evaluate_countdown("(8-5)*8", (5, 8, 8))
    Fraction(24, 1)
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"longer than {MAX_EXPRESSION_CHARS} characters")
    available = Counter(numbers)
    position = 0

    def peek() -> str:
        return text[position] if position < len(text) else ""

    def factor() -> Fraction:
        nonlocal position
        if peek() == "(":
            position += 1
            value = expression()
            if peek() != ")":
                raise ValueError(f"expected ')' at {position}")
            position += 1
            return value
        start = position
        while peek().isdigit() and peek().isascii():
            position += 1
        literal = text[start:position]
        if not literal or (literal[0] == "0" and len(literal) > 1):
            raise ValueError(f"expected a number at {start}")
        if available[int(literal)] == 0:
            raise ValueError(f"{literal} is not an unused given number")
        available[int(literal)] -= 1
        return Fraction(int(literal))

    def chain(operand, operators: str) -> Fraction:
        nonlocal position
        value = operand()
        while peek() and peek() in operators:
            operator = peek()
            position += 1
            value = _apply(operator, value, operand())
        return value

    def term() -> Fraction:
        return chain(factor, "*/")

    def expression() -> Fraction:
        return chain(term, "+-")

    value = expression()
    if position != len(text):
        raise ValueError(f"unexpected {text[position]!r} at {position}")
    return value


def _solution_class(operator: str, left: tuple, right: tuple) -> tuple:
    """The class of ``left operator right``: a sum (or product) flattened into signed terms, sorted."""
    kind, inverse = ("+", "-") if operator in "+-" else ("*", "/")

    def terms(form: tuple, sign: int) -> list[tuple]:
        inner = form[1] if form[0] == kind else ((1, form),)
        return [(sign * term_sign, term) for term_sign, term in inner]

    return (kind, tuple(sorted(terms(left, 1) + terms(right, -1 if operator == inverse else 1))))


def countdown_expressions(numbers: tuple[int, ...]) -> dict[str, tuple[Fraction, tuple]]:
    """Every expression over an ordered pick of 2 or more of ``numbers`` (each at most once), printed with the
    fewest parentheses: text -> (value, solution class). Divisions by zero are left out.

    The class identifies an expression up to commutativity and associativity (``3+5*8``, ``8*5+3`` and
    ``5*8+3`` share one), so that distinct solutions can be counted both as texts and as classes.
    """

    def build(
        ordered: tuple[int, ...],
    ) -> list[tuple[str, int, Fraction, tuple]]:  # (text, prec, value, class)
        if len(ordered) == 1:
            return [(str(ordered[0]), ATOM, Fraction(ordered[0]), ("n", ordered[0]))]
        built = []
        for split in range(1, len(ordered)):
            for left_text, left_prec, left_value, left_class in build(ordered[:split]):
                for right_text, right_prec, right_value, right_class in build(ordered[split:]):
                    for operator in COUNTDOWN_OPERATORS:
                        if operator == "/" and right_value == 0:
                            continue
                        prec = PRECEDENCE[operator]
                        # Parenthesize a lower-precedence side, and an equal-precedence right side of - or /:
                        # the parser reads chains left to right, so these are the only parentheses needed.
                        left = f"({left_text})" if left_prec < prec else left_text
                        right_tight = right_prec < prec or (right_prec == prec and operator in "-/")
                        right = f"({right_text})" if right_tight else right_text
                        built.append(
                            (
                                left + operator + right,
                                prec,
                                _apply(operator, left_value, right_value),
                                _solution_class(operator, left_class, right_class),
                            )
                        )
        return built

    found: dict[str, tuple[Fraction, tuple]] = {}
    for size in range(2, len(numbers) + 1):
        for ordered in sorted(set(itertools.permutations(numbers, size))):
            for text, _, value, solution_class in build(ordered):
                found.setdefault(text, (value, solution_class))
    return found


@dataclass(frozen=True)
class CountdownPuzzle:
    numbers: tuple[int, ...]  # sorted, as the prompt shows them
    target: int
    solutions: tuple[str, ...]  # every correct expression with the fewest parentheses, sorted
    classes: int  # distinct solutions up to commutativity and associativity
    min_numbers: int  # fewest given numbers a solution needs (difficulty: 2 easy, 3 needs all)


class CountdownTask:
    """Countdown: ``Q:2,5,8=30A:`` -> e.g. ``\\boxed{(8-5)*2+...}``; reach the target with ``+ - * /`` and
    parentheses, using each given number at most once (not all need be used).

    The problem set is enumerated, not sampled: every multiset of ``operands`` numbers in 1..``max_number``
    and every integer target in 1..``max_target`` that is not itself one of the numbers (so every solution
    needs an operation) and has at least ``min_solutions`` distinct correct expressions (texts with the fewest
    parentheses; ``classes`` also counts them up to commutativity). A fixed shuffle holds ``heldout_size``
    puzzles out of warm-up and RL.
    """

    name = "countdown"

    def __init__(
        self,
        heldout_size: int,
        operands: int = 3,
        max_number: int = 9,
        max_target: int = 30,
        min_solutions: int = 2,
    ):
        puzzles = []
        for numbers in itertools.combinations_with_replacement(range(1, max_number + 1), operands):
            by_target: dict[int, list[tuple[str, tuple]]] = {}
            for text, (value, solution_class) in countdown_expressions(numbers).items():
                if value.denominator == 1 and 1 <= value <= max_target and value not in numbers:
                    by_target.setdefault(int(value), []).append((text, solution_class))
            for target, found in sorted(by_target.items()):
                if len(found) >= min_solutions:
                    texts = sorted(text for text, _ in found)
                    puzzles.append(
                        CountdownPuzzle(
                            numbers=numbers,
                            target=target,
                            solutions=tuple(texts),
                            classes=len({solution_class for _, solution_class in found}),
                            min_numbers=min(len(NUMBER.findall(text)) for text in texts),
                        )
                    )
        random.Random(SPLIT_SEED).shuffle(puzzles)
        if not 0 < heldout_size < len(puzzles):
            raise ValueError(f"held-out size must be in (0, {len(puzzles)}), got {heldout_size}")
        self.puzzles = {self._problem(p).id: p for p in puzzles}
        self.heldout = [self._problem(p) for p in puzzles[:heldout_size]]
        self.train = [self._problem(p) for p in puzzles[heldout_size:]]

    @staticmethod
    def _problem(puzzle: CountdownPuzzle) -> Problem:
        given = ",".join(map(str, puzzle.numbers))
        return Problem(
            id=f"{given}={puzzle.target}", prompt=f"Q:{given}={puzzle.target}A:", answer=str(puzzle.target)
        )

    def target(self, problem: Problem, pick: int) -> str:
        """Supervised completion number ``pick`` (modulo the solution count) for warm-up (EOS added by the
        caller): warm-up draws ``pick`` at random so that the policy learns several solutions per prompt."""
        solutions = self.puzzles[problem.id].solutions
        return f"\\boxed{{{solutions[pick % len(solutions)]}}}"

    def reward(self, response: str, problem: Problem) -> float:
        puzzle = self.puzzles[problem.id]
        expression = last_boxed(response)
        if expression is None:
            return 0.0
        try:
            return float(evaluate_countdown(expression, puzzle.numbers) == puzzle.target)
        except (ValueError, ZeroDivisionError):
            return 0.0
