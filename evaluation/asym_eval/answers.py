"""Where a response's answer is: the last box, math-verify 0.9.0's own extraction order, and the normalization and
splitting of answer strings that the grader's cheap steps compare (``verdicts.py``). Pure string work: no parser,
no time limit."""

from __future__ import annotations

import functools
import itertools
import logging
import re

# How many ``\boxed`` openings we try from the end before giving up (bounds the work on brace bombs).
MAX_BOXED_TRIES = 8
# Every C0 control character except tab and newline, and DEL: they only ever come from broken generations.
_CONTROL_CHARS = {code: None for code in [*range(0, 9), *range(11, 32), 127]}
_BOXED_OPENERS = ("\\boxed", "\\fbox")
# "\\ " after a backslash is a row break and a space, not the command "\ " (a matrix's "1 \\ 2").
_SPACING_COMMANDS = re.compile(
    r"\\left(?![a-zA-Z])|\\right(?![a-zA-Z])|\\displaystyle|(?<!\\)\\[!,;: ]|\s+|\$"
)
# normalize() has already removed the spaces: "\\\\" separates rows, "&" columns.
_MATRIX = re.compile(r"\\begin\{([pb]matrix)\}(.*)\\end\{\1\}")


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

    load_math_verify()
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


def bracketed_items(text: str) -> tuple[str, list[str]] | None:
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


def matrix_items(text: str) -> tuple[str, list[str]] | None:
    """``\\begin{pmatrix}1\\\\2\\end{pmatrix}`` -> ("pmatrix 2x1", ["1", "2"]) (a normalized string)."""
    match = _MATRIX.fullmatch(text)
    if match is None:
        return None
    rows = [row.split("&") for row in match.group(2).split("\\\\")]
    if len({len(row) for row in rows}) != 1 or not all(all(rows) for rows in rows):
        return None
    return f"{match.group(1)} {len(rows)}x{len(rows[0])}", [item for row in rows for item in row]


def top_level_split(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` where no bracket is open."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


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


def load_math_verify():
    """math-verify, imported on first use (it pulls in sympy), with its per-string warnings silenced."""
    import math_verify

    # math-verify logs a warning for every unparsable string; a grader sees thousands of those.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
    return math_verify
