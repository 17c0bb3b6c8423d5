"""Grade one model response against a reference answer: the code both the evaluation and the training reward use.

The answer is read where math-verify 0.9.0's own ``parse`` (default extraction) finds it first, named in
``reason``: boxes (``boxed``; adjacent ones together, "\\boxed{1}, \\boxed{2}" is the list 1, 2), "the final
answer is ..." (``final_answer``), "Answer: ..." (``answer``), else the last ``$...$``, ``\\[...\\]`` or number
(``last_expression``). We run its extraction regexes and normalization, in its order, not its sympy parser.
The last complete ``\\boxed{}``/``\\fbox{}`` alone (``last_box``) is a second reading where it differs (math-verify
joins a corrected first try, "\\boxed{12}, but that fails ... \\boxed{13}", to it), unless a "final answer is"
comes first for math-verify. The verdict is "correct" when either reading holds the reference. Each answer
string is graded cheapest first (most pairs never reach sympy), against the reference as math-verify reads it
(``\\frac65``, ``864 \\mbox{ inches}^2``) and as written:
  1. exact match after a meaning-preserving normalization (spaces, ``\\left``/``\\right``, ``\\dfrac``, ``$``);
  2. plain numbers compared exactly as fractions (two different integers are settled as wrong here);
  3. two arithmetic constants, or tuples/matrices of them, whose values are far apart are different; so are two
     expressions in one-letter variables that differ at a fixed point; a list in order is the pair; an equation
     chain is its last side against a reference that is no equation (all as math-verify decides them);
  4. math-verify's ``parse``/``verify``: of the answer string, and of the whole response for its reading.
A "wrong" from steps 1-3 on math-verify's reading stands only for one plain expression (math-verify then parses
exactly that string), so the verdict is never below ``verify(parse(gold), parse(response))``; steps 1-2 and the
last box keep what it misses (``1 000`` is 1000, a stray backslash, a corrected first try). ``boxed_only=True``
is a strict mode, off by default: the last box only.

Time limits: math-verify's own timeouts use SIGALRM, which only works in a process's main thread. In the main
thread we arm one SIGALRM timer of our own around the whole math-verify step (float seconds, one bound for
parse + verify together). In any other thread (a reward function inside a vLLM engine actor) the math-verify
step is handed to a small pool of child processes (``asym_eval.pool.ThreadGradingService``), and one that
overruns is killed, so a call never hangs. Where no child process can be started, the calling thread grades
itself under a watchdog (``_WatchdogTimer``), which cannot interrupt one long C call.

>>> grade_response("... so $x = 4$. The answer is $\\\\boxed{4}$.", "4").reason
'boxed:exact'
>>> grade_response("We find $x = \\\\boxed{1}$ or $x = \\\\boxed{-2}$.", "-2, 1").correct
True
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import math
import re
import signal
import threading
from dataclasses import dataclass
from fractions import Fraction

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
# How many ``\boxed`` openings we try from the end before giving up (bounds the work on brace bombs).
MAX_BOXED_TRIES = 8

# Every C0 control character except tab and newline, and DEL: they only ever come from broken generations.
_CONTROL_CHARS = {code: None for code in [*range(0, 9), *range(11, 32), 127]}
_BOXED_OPENERS = ("\\boxed", "\\fbox")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# "\\ " after a backslash is a row break and a space, not the command "\ " (a matrix's "1 \\ 2").
_SPACING_COMMANDS = re.compile(
    r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\displaystyle|(?<!\\)\\[!,;: ]|\s+|\$"
)


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


class GradingTimeout(BaseException):
    """Raised by our SIGALRM timer. A BaseException, like math-verify's, so ``except Exception`` inside
    sympy or math-verify cannot swallow it."""


def clean_response(response: str) -> str:
    return response.translate(_CONTROL_CHARS)


def _braced_content(text: str, open_index: int) -> str | None:
    """Content of the ``{...}`` starting at ``text[open_index] == "{"``, or None when it never closes."""
    depth = 0
    for index in range(open_index, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_index + 1 : index]
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last complete, non-empty ``\\boxed{...}`` (or ``\\fbox{...}``).

    >>> last_boxed("first \\\\boxed{1}, then \\\\boxed{ \\\\frac{2}{3} }")
    '\\\\frac{2}{3}'
    """
    end = len(text)
    for _ in range(MAX_BOXED_TRIES):
        start = max(text.rfind(opener, 0, end) for opener in _BOXED_OPENERS)
        if start < 0:
            return None
        after = start + (len("\\boxed") if text.startswith("\\boxed", start) else len("\\fbox"))
        rest = text[after : after + 1]
        if rest == "{":
            content = _braced_content(text, after)
            if content is not None and content.strip():  # an empty box is the instruction's, not an answer
                return content.strip()
        elif rest == " ":  # "\boxed 5": the argument is the next token
            token = text[after + 1 :].split(maxsplit=1)
            if token:
                return token[0].rstrip("$.")
        end = start  # unclosed or empty: try the previous one
    return None


@functools.cache
def _math_verify_patterns():
    """math-verify's extraction regexes for ``parse``'s default config, grouped by priority, as it orders them."""
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig, get_extraction_regexes

    _math_verify()
    flat = [
        (priority, pattern, target)
        for patterns, target in get_extraction_regexes([LatexExtractionConfig(), ExprExtractionConfig()])
        for pattern, priority in patterns
    ]
    flat.sort(key=lambda item: item[0])  # stable, as in math-verify: LaTeX patterns before expressions
    groups = itertools.groupby(flat, key=lambda item: item[0])
    return [(priority, [(p, t) for _, p, t in group]) for priority, group in groups]


def math_verify_candidate(text: str) -> tuple[str, bool, str] | None:
    """What math-verify's ``parse`` tries first in ``text``: the string (the fallback string it returns), whether
    it is one plain expression (not several joined as ``$a$ and $b$``, no percent sign, not a bare ``1/2``; when
    such a string parses, it is math-verify's answer), and which of its rules found it (``_RULES``).

    >>> math_verify_candidate("The final answer is $28$. I hope it is correct.")
    ('28', True, 'final_answer')
    >>> math_verify_candidate("no digits here") is None
    True
    """
    from dataclasses import replace

    from latex2sympy2_extended.latex2sympy2 import normalize_latex
    from math_verify.parser import LatexExtractionConfig, extract_expr

    for priority, group in _math_verify_patterns():
        matches = [(match, pattern, target) for pattern, target in group for match in pattern.finditer(text)]
        if not matches:
            continue
        # math-verify tries the match that ends last first (then the one that starts first)
        match, pattern, target = max(matches, key=lambda item: (item[0].end(), -item[0].start()))
        rule = "boxed" if "boxed" in pattern.pattern else _RULES[priority]
        found = match.groupdict()
        if not isinstance(target, LatexExtractionConfig):
            if found.get("expr"):
                return found["expr"], False, rule
            try:
                _, number = extract_expr(match)  # digits only: no sympy parse
            except ValueError:  # over Python's 4,300-digit limit: math-verify's parse gives up the same way
                return match.group(0), False, rule
            return number, not found.get("percent"), rule
        latex = [(name, value) for name, value in found.items() if value and "_latex" in name]
        config = target.normalization_config
        strings = [
            normalize_latex(value, config=replace(config, boxed="last") if name.endswith("Boxed") else config)
            for name, value in latex
        ]
        single = len(latex) == 1 and not found.get(latex[0][0].split("_")[0] + "_percent")
        return " and ".join(strings), single, rule
    return None


# math-verify's rule priorities (its parser.py) -> our name for where the answer was found.
_RULES = {0: "final_answer", 50: "final_answer", 100: "answer", 200: "answer", 300: "last_expression"}


def normalize(answer: str) -> str:
    """Spelling differences that never change the value: spacing, ``\\left``/``\\right``, ``$``, ``\\dfrac``,
    a trailing period.

    >>> normalize("\\\\left( 3, \\\\dfrac{\\\\pi}{2} \\\\right).")
    '(3,\\\\frac{\\\\pi}{2})'
    """
    text = _SPACING_COMMANDS.sub("", answer)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("^{\\circ}", "^\\circ")
    return text.rstrip(".")


def _as_fraction(text: str) -> Fraction | None:
    # Length cap: Python refuses int strings over 4,300 digits (and they are no one's answer).
    if len(text) > 100:
        return None
    if _THOUSANDS.fullmatch(text):  # "10,080": one number to math-verify too
        text = text.replace(",", "")
    return Fraction(text) if _PLAIN_NUMBER.fullmatch(text) else None


def _numeric_value(text: str) -> Fraction | None:
    """A plain number, allowing a trailing percent sign (only used with an explicit tolerance)."""
    text = normalize(text)
    for suffix in ("\\%", "%"):
        text = text.removesuffix(suffix)
    return _as_fraction(text)


def _constant_without_percent(text: str) -> float | None:
    text = normalize(text)
    for suffix in ("\\%", "%"):
        text = text.removesuffix(suffix)
    value = constant_value(text)
    return value if value is not None and math.isfinite(value) else None


def _fast_verdict(extracted: str, answer: str, tolerance: float | None) -> tuple[bool, str] | None:
    """(correct, reason) when settled without a symbolic parse, else None. Each rule here agrees with
    math-verify's verdict (or is only more lenient on a correct answer, never on a wrong one); anything unsure
    returns None and goes to math-verify."""
    if tolerance is not None:
        pred_value, gold_value = _numeric_value(extracted), _numeric_value(answer)
        if pred_value is not None and gold_value is not None:  # plain decimals: exact arithmetic
            return abs(pred_value - gold_value) <= Fraction(str(tolerance)), "number_within_tolerance"
        # Any other numeric value (\frac{1}{3}, 2\sqrt{2}, \pi/4, with or without a percent sign) against the
        # tolerance in floating point, with a relative slack of 1e-12 so a value on the boundary counts.
        pred_float, gold_float = _constant_without_percent(extracted), _constant_without_percent(answer)
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
        sides = _top_level_split(pred, "=")
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
    pred_value, gold_value = _as_fraction(pred), _as_fraction(gold)
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
        _bracketed_items(pred) or _matrix_items(pred),
        _bracketed_items(gold) or _matrix_items(gold),
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
    if gold_items and gold_items[0] == "()" and not pred_items and not _THOUSANDS.fullmatch(pred):
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


def _bracketed_items(text: str) -> tuple[str, list[str]] | None:
    """``(a,b]`` -> ("(]", ["a", "b"]) when one bracket pair encloses the whole text, else None."""
    if len(text) < 2 or text[0] not in "([" or text[-1] not in ")]":
        return None
    depth = 0
    for index, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if depth == 0 and index < len(text) - 1:
            return None  # "(1)+(2)": the first bracket closes early
    items = split_top_level(text[1:-1])
    return (text[0] + text[-1], items) if len(items) >= 2 else None


def _matrix_items(text: str) -> tuple[str, list[str]] | None:
    """``\\begin{pmatrix}1\\\\2\\end{pmatrix}`` -> ("pmatrix 2x1", ["1", "2"]) (a normalized string)."""
    match = _MATRIX.fullmatch(text)
    if match is None:
        return None
    rows = [row.split("&") for row in match.group(2).split("\\\\")]
    if len({len(row) for row in rows}) != 1 or not all(all(rows) for rows in rows):
        return None
    return f"{match.group(1)} {len(rows)}x{len(rows[0])}", [item for row in rows for item in row]


def _top_level_split(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` where no bracket is open."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


_ASSIGNMENT = re.compile(r"[a-zA-Z]=([^=]+)")
# Relations and set symbols (a prefix is enough: "\in" covers "\infty" too, which only makes us ask the parser).
_RELATION = re.compile(r"[<>]|\\(?:le|ge|ne|approx|sim|equiv|lt|gt|in|subset|supset|cup|cap|pm|mp|to)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
# normalize() has already removed the spaces: "\\" separates rows, "&" columns.
_MATRIX = re.compile(r"\\begin\{([pb]matrix)\}(.*)\\end\{\1\}")
_UNIT_SUFFIX = re.compile(r"(?:\^\{?\\circ\}?|\\(?:text|mbox)\{[^{}]*\}(?:\^\d)?)$")
_CONSTANT_TOKENS = re.compile(
    r"\\frac|\\sqrt|\\pi|\\cdot|\\times|\d+(?:\.\d*)?|\.\d+|[-+*/^(){}\[\]]|[a-zA-Z]"
)
# Two assignments of the variables: an expression's value under each. Irrational-looking values in [0.5, 2]
# (positive: roots and fractional powers stay real), one per lower-cased letter.
_POINTS = tuple(
    {
        letter: 0.5 + ((index + 1) * golden % 1) * 1.5
        for index, letter in enumerate("abcdfghijklmnopqrstuvwxyz")
    }
    for golden in (0.6180339887498949, 0.7548776662466927)
)


def constant_value(text: str) -> float | None:
    r"""The value of a normalized arithmetic constant (integers, decimals, ``\\frac``, ``\\sqrt``, ``\\pi``,
    + - * / ^, implicit products), or None for anything else (variables, units, sets, percent, ...).

    >>> round(constant_value("\\frac{3\\sqrt{2}}{4}"), 6)
    1.06066
    >>> constant_value("x+1") is None
    True
    """
    values = _evaluate(text, False)
    return values[0] if values else None


def expression_values(text: str) -> tuple[float, ...] | None:
    r"""The values of a normalized expression in one-letter variables (and what ``constant_value`` reads) at two
    fixed points, or None outside that grammar. Letters are lower-cased (math-verify's symbols are); ``e``
    (Euler's number to math-verify) and ``I`` (the imaginary unit) are outside it, so are a letter before a
    digit or a bracket (``x2``, ``f(x)``: a subscript or a function to math-verify).

    >>> [round(v, 3) for v in expression_values("2k+8")] == [round(v, 3) for v in expression_values("8+2K")]
    True
    """
    return _evaluate(text, True)


@functools.lru_cache(maxsize=65536)
def _evaluate(text: str, with_variables: bool) -> tuple[float, ...] | None:
    if len(text) > 200:
        return None
    tokens = _CONSTANT_TOKENS.findall(text)
    if "".join(tokens) != text:  # something outside the grammar (a command, a comma, \\circ, \\%)
        return None
    values = []
    for point in _POINTS if with_variables else ({},):
        parser = _Constant(tokens, point)
        try:
            value, position = parser.expression(0)
        except (_NotConstant, ArithmeticError, ValueError, IndexError, TypeError):
            return None
        if position != len(parser.tokens) or isinstance(value, complex) or value != value:
            return None
        values.append(float(value))
    return tuple(values)


class _NotConstant(Exception):
    pass


class _Constant:
    """Recursive descent over the tokens of ``constant_value``; returns (value, next position)."""

    def __init__(self, tokens: list[str], point: dict[str, float]):
        self.tokens = tokens
        self.point = point  # the variables' values; empty: a constant, no letters

    def expression(self, i: int):
        value, i = self.term(i)
        while i < len(self.tokens) and self.tokens[i] in "+-":
            right, j = self.term(i + 1)
            value, i = (value + right if self.tokens[i] == "+" else value - right), j
        return value, i

    def term(self, i: int):
        value, i = self.signed(i)
        while i < len(self.tokens):
            token = self.tokens[i]
            if token in ("*", "\\cdot", "\\times", "/"):
                right, j = self.signed(i + 1)
                value, i = (value / right if token == "/" else value * right), j
            elif token == "\\frac" or token in "({":
                # "15\\frac{39}{40}" is a mixed number to math-verify, "2(3)" is 5, "f(x)" a function
                raise _NotConstant
            elif token[0].isdigit() and self.tokens[i - 1].isalpha():
                raise _NotConstant  # "x2": a subscript to math-verify
            elif token in ("\\sqrt", "\\pi") or token[0].isdigit() or token.isalpha():
                right, i = self.power(i)  # implicit product: 2\\sqrt{3}, 3\\pi, 2k, xy
                value *= right
            else:
                break
        return value, i

    def signed(self, i: int):
        if self.tokens[i] in "+-":
            value, j = self.signed(i + 1)
            return (-value if self.tokens[i] == "-" else value), j
        return self.power(i)

    def power(self, i: int):
        base, i = self.atom(i)
        if i < len(self.tokens) and self.tokens[i] == "^":
            exponent, i = self.argument(i + 1, letter=True)
            if abs(exponent) > 64 or (base == 0 and exponent <= 0):
                raise _NotConstant  # power towers and the like: leave them to math-verify's time limit
            base = base**exponent
        return base, i

    def argument(self, i: int, letter: bool = False):
        """``{expr}`` or a single digit (``\\frac12``, ``x^2``), or a letter as an exponent (``2^n``: the spaces
        are gone, so ``\\frac ab`` could have been a control word)."""
        token = self.tokens[i]
        if token == "{":
            value, i = self.expression(i + 1)
            if self.tokens[i] != "}":
                raise _NotConstant
            return value, i + 1
        if token.isdigit():
            return (int(token[0]), i + 1) if len(token) == 1 else self._split_digits(i)
        if letter and token.isalpha():
            return self.atom(i)
        raise _NotConstant

    def _split_digits(self, i: int):
        # "\\frac12": the tokenizer read "12"; TeX reads "1" then "2".
        token = self.tokens[i]
        self.tokens = self.tokens[:i] + [token[0], token[1:]] + self.tokens[i + 1 :]
        return int(token[0]), i + 1

    def atom(self, i: int):
        token = self.tokens[i]
        if token == "\\frac":
            numerator, i = self.argument(i + 1)
            denominator, i = self.argument(i)
            return numerator / denominator, i
        if token == "\\sqrt":
            radicand, i = self.argument(i + 1)
            if radicand < 0:
                raise _NotConstant
            return radicand**0.5, i
        if token == "\\pi":
            return 3.141592653589793, i + 1
        if token in ("(", "{"):
            value, i = self.expression(i + 1)
            if self.tokens[i] != {"(": ")", "{": "}"}[token]:
                raise _NotConstant
            return value, i + 1
        if token[0].isdigit() or token[0] == ".":
            return float(token), i + 1
        if token.isalpha() and token != "I" and token.lower() in self.point:  # I: the imaginary unit
            return self.point[token.lower()], i + 1
        raise _NotConstant


def split_top_level(answer: str) -> list[str]:
    """Split on commas that are not inside any bracket: ``(1,2),(3,4)`` -> ``["(1,2)", "(3,4)"]``."""
    parts, depth, current = [], 0, []
    for char in answer:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


# --- math-verify -------------------------------------------------------------------------------------------


def _math_verify():
    import math_verify

    # math-verify logs a warning for every unparsable string; a grader sees thousands of those.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
    return math_verify


@functools.lru_cache(maxsize=4096)
def parse_reference(answer: str):
    """The reference parsed once per process (a benchmark has k samples per problem)."""
    return _math_verify().parse(f"${answer}$", parsing_timeout=None)


def _symbolic_equal(extracted: str, answer: str) -> tuple[bool, bool]:
    """(equal, whether ``extracted`` parsed to an expression rather than only math-verify's fallback string)."""
    math_verify = _math_verify()
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


class _AlarmTimer:
    """SIGALRM after ``seconds`` (main thread only); restores whatever timer and handler were there.

    The alarm repeats every ``REFIRE_S`` until the block ends: an exception raised by a signal handler is lost
    where Python cannot propagate it (in a ``__del__``, a weakref or GC callback: "Exception ignored in ..."),
    and a one-shot alarm lost that way left a hostile response unbounded (26-42 s instead of 1 s, seen under
    load). A later alarm raises again.
    """

    REFIRE_S = 0.05

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = False

    def __enter__(self):
        def on_alarm(signum, frame):
            if self.active:  # not once the block is leaving: the last alarm may land in __exit__
                raise GradingTimeout(f"grading took over {self.seconds:g}s")

        self.previous_handler = signal.signal(signal.SIGALRM, on_alarm)
        self.active = True
        self.previous_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, self.REFIRE_S)
        return self

    def __exit__(self, *exc):
        self.active = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous_handler)
        if self.previous_timer[0] > 0:  # someone else's timer was running: put it back
            signal.setitimer(signal.ITIMER_REAL, *self.previous_timer)
        return False


class _WatchdogTimer:
    """``_AlarmTimer`` for any thread: a watchdog thread raises ``GradingTimeout`` in the timed thread after
    ``seconds`` (``PyThreadState_SetAsyncExc``), again every ``REFIRE_S`` until the block ends.

    An asynchronous exception is raised between two bytecodes, so one long call into C (a regex on degenerate
    text, a big-integer power) runs to its end first: the bound is looser than a killed process's, which is why
    this is only the fallback where no grading process can be started. The exception is never raised after the
    block: leaving it clears a pending one under the lock the watchdog raises it under.
    """

    REFIRE_S = 0.05
    _set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    _set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.active = False

    def __enter__(self):
        self.thread_id = threading.get_ident()
        self.active = True
        threading.Thread(target=self._watch, daemon=True, name="grading-watchdog").start()
        return self

    def _watch(self) -> None:
        wait_s = self.seconds
        while not self.done.wait(wait_s):
            with self.lock:
                if not self.active:
                    return
                self._set_async_exc(self.thread_id, GradingTimeout)  # the class: CPython instantiates it
            wait_s = self.REFIRE_S

    def __exit__(self, *exc):
        with self.lock:
            self.active = False
            self._set_async_exc(self.thread_id, ctypes.py_object())  # NULL: drop one not raised yet
        self.done.set()
        return False


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
    math_verify = _math_verify()
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
    """``grade_response`` in this process: under SIGALRM in the main thread, under a ``_WatchdogTimer`` (a
    looser bound) in any other."""
    text, readings = clean_response(response), []
    main_thread = threading.current_thread() is threading.main_thread()
    timer = _AlarmTimer(timeout_s) if main_thread else _WatchdogTimer(timeout_s)
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


def grade_response(
    response: str,
    answer: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    multiple_answers: bool = False,
    tolerance: float | None = None,
    boxed_only: bool = False,
) -> GradeResult:
    """Is ``response``'s final answer equal to ``answer``? Safe from any thread; never runs past
    ``timeout_s`` (plus about a second of process start-up the first time it is called off the main thread).

    ``multiple_answers``: ``answer`` is a comma-separated list (OlympiadBench ``is_multiple_answer``), any
    order accepted. ``tolerance``: absolute numeric tolerance (OlympiadBench ``error``). ``boxed_only``: the
    strict mode, only the last ``\\boxed{}`` counts (no math_verify reading of the rest of the response).
    """
    if threading.current_thread() is threading.main_thread():
        return grade_in_this_process(
            response,
            answer,
            timeout_s=timeout_s,
            multiple_answers=multiple_answers,
            tolerance=tolerance,
            boxed_only=boxed_only,
        )
    # Off the main thread SIGALRM is unavailable: settle the cheap cases here, hand the rest to a child.
    settled = grade_without_parser(response, answer, tolerance, boxed_only)
    if settled is not None:
        return settled
    from asym_eval.pool import thread_grading_service

    request = GradeRequest(response, answer, multiple_answers, tolerance, boxed_only)
    return thread_grading_service(timeout_s).grade(request)


@dataclass(frozen=True)
class GradeRequest:
    """One (response, reference) pair with the OlympiadBench fields."""

    response: str
    answer: str
    multiple_answers: bool = False
    tolerance: float | None = None
    boxed_only: bool = False
