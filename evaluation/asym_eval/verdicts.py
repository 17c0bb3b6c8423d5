"""The grader's verdict in this process: the readings of a response (``answers.py``), the cheap steps (exact,
number, constant: ``arithmetic.py``), then math-verify's parse/verify, under this process's time limit
(``time_limit.py``). The rules are in ``grading.py``'s docstring; ``grading.grade_response`` is the entry point,
which hands work off the main thread to the worker processes of ``pool.py``. A leaf: nothing here starts a
process or a thread.

>>> grade_in_this_process("... so $x = 4$. The answer is $\\\\boxed{4}$.", "4").reason
'boxed:exact'
"""

from __future__ import annotations

import functools
import re
import threading
from dataclasses import dataclass
from fractions import Fraction

from asym_eval.answers import (
    bracketed_items,
    clean_response,
    last_boxed,
    load_math_verify,
    math_verify_candidate,
    matrix_items,
    normalize,
    split_top_level,
    top_level_split,
)
from asym_eval.arithmetic import (
    THOUSANDS_NUMBER,
    as_fraction,
    constant_value,
    constant_without_percent,
    expression_values,
    numeric_value,
)
from asym_eval.time_limit import AlarmTimer, GradingTimeout, WatchdogTimer

# Recorded with every run (config.json): samples graded by another version are not mixed into one summary.
# Bump it whenever a verdict can change.
GRADER_VERSION = 4
DEFAULT_TIMEOUT_S = 5.0
# Longest extracted answer we hand to the symbolic parser; the longest reference in the five benchmarks is
# 198 characters, so anything this long is a runaway generation, not an answer.
MAX_ANSWER_CHARS = 1000
# Longest response whose math-verify reading is taken without a time limit (in a vLLM thread, in the pool's
# parent). Its regexes are quadratic on degenerate text ("\\( a " repeated: 0.2 s at 4,000 characters, 4 s at
# 19,000); longer responses are read in a process under the limit.
MAX_FREE_READING_CHARS = 4000

_ASSIGNMENT = re.compile(r"[a-zA-Z]=([^=]+)")
# Relations and set symbols (a prefix is enough: "\in" covers "\infty" too, which only makes us ask the parser).
_RELATION = re.compile(r"[<>]|\\(?:le|ge|ne|approx|sim|equiv|lt|gt|in|subset|supset|cup|cap|pm|mp|to)")
_UNIT_SUFFIX = re.compile(r"(?:\^\{?\\circ\}?|\\(?:text|mbox)\{[^{}]*\}(?:\^\d)?)$")


@dataclass(frozen=True)
class GradeResult:
    """``correct``: the verdict; ``extracted``: the answer taken from the response (None if none);
    ``reason``: ``READING:STEP``, where the answer was found (``last_box``; math-verify's ``boxed``,
    ``final_answer``, ``answer``, ``last_expression``) and which step
    decided (``exact``, ``number``, ``constant``, ``number_within_tolerance``, ``verify``, ``answer_too_long``),
    or a failure (``no_answer``, ``timeout``, ``timeout_killed``, ``worker_crashed (exit code N)``, ...)."""

    correct: bool
    extracted: str | None
    reason: str


@dataclass(frozen=True)
class Reading:
    """One reading of the response: ``source`` (``last_box``, or the math-verify rule that found it), the answer
    string (None when only math-verify's parse of the whole response can tell), the cheap steps' verdict (None:
    undecided) and step, and ``single`` (see ``math_verify_candidate``)."""

    source: str
    answer: str | None
    verdict: bool | None
    step: str
    single: bool = True


def _fast_verdict(extracted: str, answer: str, tolerance: float | None) -> tuple[bool, str] | None:
    """(correct, reason) when settled without a symbolic parse, else None. Each rule here agrees with
    math-verify's verdict (or is only more lenient on a correct answer, never on a wrong one); anything unsure
    returns None and goes to math-verify."""
    if tolerance is not None:
        pred_value, gold_value = numeric_value(extracted), numeric_value(answer)
        if pred_value is not None and gold_value is not None:  # plain decimals: exact arithmetic
            return abs(pred_value - gold_value) <= Fraction(str(tolerance)), "number_within_tolerance"
        # Any other numeric value (\frac{1}{3}, 2\sqrt{2}, \pi/4, with or without a percent sign) against the
        # tolerance in floating point, with a relative slack of 1e-12 so a value on the boundary counts.
        pred_float, gold_float = constant_without_percent(extracted), constant_without_percent(answer)
        if pred_float is not None and gold_float is not None:
            slack = 1e-12 * max(1.0, abs(gold_float))
            return abs(pred_float - gold_float) <= tolerance + slack, "number_within_tolerance"
    pred, gold = normalize(extracted), normalize(answer)
    assignment = _ASSIGNMENT.fullmatch(pred)
    if assignment and constant_value(gold) is not None:
        # "\boxed{x = 3}" for the reference "3": math-verify compares the right-hand side too (done for a
        # numeric reference only: with "\text{east}" or a set, math-verify does not accept the "x =")
        pred = assignment.group(1)
    verdict = _normalized_verdict(pred, gold)
    if verdict is None and "=" not in gold and not _RELATION.search(gold + pred):
        # "\frac{7!}{2! \times 2!} = 1260" for 1260: math-verify compares the last right-hand side of an
        # equation (chain) with a reference that is no equation. A "wrong" stands only where every side is an
        # expression we evaluate: math-verify then parses that equation as such.
        sides = top_level_split(pred, "=")
        if len(sides) >= 2 and all(sides):
            last = _normalized_verdict(sides[-1], gold)
            if last is not None and (last[0] or all(expression_values(side) for side in sides)):
                verdict = last[0], "equation"
    return verdict


def _normalized_verdict(pred: str, gold: str) -> tuple[bool, str] | None:
    """``_fast_verdict`` on two normalized strings, before the equation rule."""
    if pred == gold:
        return True, "exact"
    unit = _UNIT_SUFFIX.search(gold)
    if unit and pred.endswith(unit.group(0)) and len(pred) > len(unit.group(0)):
        # The same unit on both sides ("40^\\circ" vs "90^\\circ", "5.4\\text{cents}"): compare what precedes it.
        pred, gold = pred[: -len(unit.group(0))], gold[: unit.start()]
    pred_value, gold_value = as_fraction(pred), as_fraction(gold)
    if pred_value is not None and gold_value is not None:
        if pred_value == gold_value:
            return True, "number"
        # Two different integers are different; decimals go on to math-verify, which rounds to 6 places.
        if "." not in pred and "." not in gold:
            return False, "number"
    # Two arithmetic constants (fractions, roots, pi) whose values are far apart are different whatever
    # the spelling; close values are left to math-verify's own rounding rules.
    if _far_apart(constant_value(pred), constant_value(gold)):
        return False, "constant"
    items = _items_verdict(pred, gold)
    if items is not None:
        return items
    # Two expressions in variables that differ at a point are different functions: no simplification makes
    # them equal (math-verify's symbols are real, lower-cased; ours too).
    if _differ(expression_values(pred), expression_values(gold)):
        return False, "expression"
    return None


def _items_verdict(pred: str, gold: str) -> tuple[bool, str] | None:
    """Tuples, intervals and matrices: one element far off decides "wrong"; and the parts of a list in order
    ("3, \\frac{\\pi}{2}", boxed one by one) are the pair ``(3, \\frac{\\pi}{2})`` (math-verify: the same)."""
    pred_items, gold_items = (
        bracketed_items(pred) or matrix_items(pred),
        bracketed_items(gold) or matrix_items(gold),
    )
    if (
        pred_items
        and gold_items
        and pred_items[0] == gold_items[0]
        and len(pred_items[1]) == len(gold_items[1])
    ):
        pairs = [(p, g) for p, g in zip(pred_items[1], gold_items[1]) if p != g]
        values = [(expression_values(p), expression_values(g)) for p, g in pairs]
        if all(p and g for p, g in values) and any(_differ(p, g) for p, g in values):
            return False, "constant"
        return None
    if gold_items and gold_items[0] == "()" and not pred_items and not THOUSANDS_NUMBER.fullmatch(pred):
        parts = split_top_level(pred)
        if len(parts) == len(gold_items[1]) and all(
            (_normalized_verdict(p, g) or (False,))[0] for p, g in zip(parts, gold_items[1])
        ):
            return True, "tuple"
    return None


def _differ(pred: tuple | None, gold: tuple | None) -> bool:
    return bool(pred and gold) and any(_far_apart(p, g) for p, g in zip(pred, gold))


def _far_apart(pred: float | None, gold: float | None) -> bool:
    return pred is not None and gold is not None and abs(pred - gold) > 1e-4 * max(1.0, abs(gold))


@functools.lru_cache(maxsize=4096)
def parse_reference(answer: str):
    """The reference parsed once per process (a benchmark has k samples per problem)."""
    return load_math_verify().parse(f"${answer}$", parsing_timeout=None)


def _symbolic_equal(extracted: str, answer: str) -> tuple[bool, bool]:
    """(equal, whether ``extracted`` parsed to an expression rather than only math-verify's fallback string)."""
    math_verify = load_math_verify()
    gold = parse_reference(answer)
    pred = math_verify.parse(f"${extracted}$", parsing_timeout=None)
    parsed = any(not isinstance(item, str) for item in pred)
    return bool(gold and pred and math_verify.verify(gold, pred, timeout_seconds=None)), parsed


@functools.lru_cache(maxsize=65536)
def _symbolic_verdict(extracted: str, answer: str, multiple_answers: bool) -> tuple[bool, bool]:
    """(correct, parsed). Cached: the k samples of a problem often end in the same (wrong) answer. A timeout
    raises, so it is never cached."""
    correct, parsed = _symbolic_equal(extracted, answer)
    if correct or not multiple_answers:
        return correct, parsed
    return _any_order_parts_equal(extracted, answer), parsed


def _any_order_parts_equal(extracted: str, answer: str) -> bool:
    # OlympiadBench multi-answer: the same answers in any order, each part graded on its own.
    gold_parts, pred_parts = split_top_level(answer), split_top_level(extracted)
    if len(gold_parts) != len(pred_parts) or len(gold_parts) < 2:
        return False
    unmatched = list(pred_parts)
    for gold_part in gold_parts:
        match = next((p for p in unmatched if _part_equal(p, gold_part)), None)
        if match is None:
            return False
        unmatched.remove(match)
    return True


def _part_equal(pred: str, gold: str) -> bool:
    fast = _fast_verdict(pred, gold, None)
    return fast[0] if fast is not None else _symbolic_equal(pred, gold)[0]


def _reading(source: str, answer_text: str, single: bool, answer: str, tolerance: float | None) -> Reading:
    """The cheap steps on one answer string. ``single``: a "wrong" may stand (the string is what gets parsed)."""
    if len(answer_text) > MAX_ANSWER_CHARS:  # a runaway generation: only math-verify's own parse may differ
        verdict = False if source == "last_box" else None
        return Reading(source, answer_text[:MAX_ANSWER_CHARS], verdict, "answer_too_long", False)
    spellings = _reference_spellings(answer)
    fast = next(filter(None, (_fast_verdict(answer_text, gold, tolerance) for gold in spellings)), None)
    if fast is None or (fast[0] is False and not single):
        return Reading(source, answer_text, None, "verify", single)
    return Reading(source, answer_text, *fast, single)


@functools.lru_cache(maxsize=4096)
def _reference_spellings(answer: str) -> tuple[str, ...]:
    """The reference as math-verify reads it, then as written. Its parse of ``$answer$`` runs the same
    extraction and normalization (``\\frac65``, ``864 \\mbox{ inches}^2``, ``\\$18.90`` become ``\\frac{6}{5}``,
    ``864``, ``18.90``), so that string is what it turns into the value it compares with."""
    found = math_verify_candidate(f"${answer}$")
    return (answer,) if found is None or not found[1] or found[0] == answer else (found[0], answer)


def read_answers(
    response: str, answer: str, tolerance: float | None = None, boxed_only: bool = False, bounded: bool = True
) -> list[Reading]:
    """The readings of the response (the last box, math-verify's) and what the cheap steps (string and regex
    work, no sympy) say of each. Safe in any thread. ``bounded``: no time limit is armed here, so a response
    longer than ``MAX_FREE_READING_CHARS`` is not read by math-verify's regexes (left undecided, no string)."""
    text = clean_response(response)
    boxed = last_boxed(text)
    if boxed_only:
        return [] if boxed is None else [_reading("last_box", boxed, True, answer, tolerance)]
    if bounded and len(text) > MAX_FREE_READING_CHARS:
        # A correct last box still settles it here, unless a "final answer" (which math-verify's rules would
        # read first) is in the text; anything else is read under the limit.
        reading = None if boxed is None else _reading("last_box", boxed, True, answer, tolerance)
        if reading and reading.verdict and "final answer" not in text.lower():
            return [reading]
        return [Reading("math_verify", None, None, "verify")]
    found = math_verify_candidate(text)
    readings = [] if found is None else [_reading(found[2], found[0], found[1], answer, tolerance)]
    # The last box is read on its own too (math-verify may join a corrected first try to it, and it does not
    # look for \fbox), except after a "final answer is", which math-verify ranks first: then that is the answer.
    if boxed is not None and (
        found is None or (found[2] != "final_answer" and normalize(found[0]) != normalize(boxed))
    ):
        readings.append(_reading("last_box", boxed, True, answer, tolerance))
    return readings


def _settled(readings: list[Reading]) -> GradeResult | None:
    """Correct as soon as one reading is, wrong once all are, else None (the parser must decide)."""
    for reading in readings:
        if reading.verdict:
            return GradeResult(True, reading.answer, f"{reading.source}:{reading.step}")
    if not readings:
        return GradeResult(False, None, "no_answer")
    if any(reading.verdict is None for reading in readings):
        return None
    shown = readings[0]  # math-verify's reading when there is one: it sees several boxes
    return GradeResult(False, shown.answer, f"{shown.source}:{shown.step}")


def grade_without_parser(
    response: str, answer: str, tolerance: float | None = None, boxed_only: bool = False
) -> GradeResult | None:
    """The cheap steps: a ``GradeResult`` when they settle the pair, else None (the parser must decide)."""
    try:
        return _settled(read_answers(response, answer, tolerance, boxed_only))
    except Exception:  # math-verify's normalization failing on an odd string: the worker reports it
        return None


def _parser_verdict(reading: Reading, text: str, answer: str, multiple_answers: bool) -> bool:
    """Our parse of the answer string (with OlympiadBench's any-order parts), then, for math-verify's reading,
    its own parse of the whole response: it moves on to the next match when the first does not parse, and reads
    percent signs and lists its own way. One plain expression that parsed is its answer already."""
    parsed = False
    if reading.answer is not None and reading.step != "answer_too_long":
        correct, parsed = _symbolic_verdict(reading.answer, answer, multiple_answers)
        if correct:
            return True
    if reading.source == "last_box" or (reading.single and parsed):
        return False
    math_verify = load_math_verify()
    gold, pred = parse_reference(answer), math_verify.parse(text, parsing_timeout=None)
    return bool(gold and pred and math_verify.verify(gold, pred, timeout_seconds=None))


def grade_in_this_process(
    response: str,
    answer: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    multiple_answers: bool = False,
    tolerance: float | None = None,
    boxed_only: bool = False,
) -> GradeResult:
    """``grade_response`` in this process: under SIGALRM in the main thread, under a ``WatchdogTimer`` (a
    looser bound) in any other."""
    text, readings = clean_response(response), []
    main_thread = threading.current_thread() is threading.main_thread()
    timer = AlarmTimer(timeout_s) if main_thread else WatchdogTimer(timeout_s)
    try:
        with timer:  # the readings too: here nothing else bounds a long response's regexes
            readings = read_answers(text, answer, tolerance, boxed_only, bounded=False)
            settled = _settled(readings)
            if settled is not None:
                return settled
            decided = []
            for reading in readings:
                if reading.verdict is None:
                    verdict = _parser_verdict(reading, text, answer, multiple_answers)
                    reading = Reading(reading.source, reading.answer, verdict, "verify")
                decided.append(reading)
                if reading.verdict:
                    break
            return _settled(decided)
    except GradingTimeout:
        return GradeResult(False, readings[0].answer if readings else None, "timeout")
    except Exception as err:  # a parser bug on one odd string must not stop a run
        return GradeResult(False, readings[0].answer if readings else None, f"error: {type(err).__name__}")


@dataclass(frozen=True)
class GradeRequest:
    """One (response, reference) pair with the OlympiadBench fields."""

    response: str
    answer: str
    multiple_answers: bool = False
    tolerance: float | None = None
    boxed_only: bool = False
