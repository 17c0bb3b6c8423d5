"""A small exact evaluator of arithmetic answers (numbers, fractions, roots, pi, e, and expressions in one-letter
variables at fixed points): the grader's step 3 (``verdicts.py``) tells two answers apart with it before any
symbolic parser runs. Hand-written and bounded, so a hostile string cannot make it run long."""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

from asym_eval.answers import normalize

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
THOUSANDS_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
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


def as_fraction(text: str) -> Fraction | None:
    # Length cap: Python refuses int strings over 4,300 digits (and they are no one's answer).
    if len(text) > 100:
        return None
    if THOUSANDS_NUMBER.fullmatch(text):  # "10,080": one number to math-verify too
        text = text.replace(",", "")
    return Fraction(text) if _PLAIN_NUMBER.fullmatch(text) else None


def numeric_value(text: str) -> Fraction | None:
    """A plain number, allowing a trailing percent sign (only used with an explicit tolerance)."""
    text = normalize(text)
    for suffix in ("\\%", "%"):
        text = text.removesuffix(suffix)
    return as_fraction(text)


def constant_without_percent(text: str) -> float | None:
    text = normalize(text)
    for suffix in ("\\%", "%"):
        text = text.removesuffix(suffix)
    value = constant_value(text)
    return value if value is not None and math.isfinite(value) else None


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
