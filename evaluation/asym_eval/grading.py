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
parse + verify together; ``time_limit.py``). In any other thread (a reward function inside a vLLM engine actor)
the math-verify step is handed to a small pool of child processes (``asym_eval.pool.ThreadGradingService``),
and one that overruns is killed, so a call never hangs. Where no child process can be started, the calling
thread grades itself under a watchdog (``WatchdogTimer``), which cannot interrupt one long C call.

Where the work is: ``answers.py`` (where the answer is), ``arithmetic.py`` (the exact evaluator of steps 2-3),
``verdicts.py`` (the steps, in this process), ``pool.py`` (worker processes); this module is the entry point.

>>> grade_response("... so $x = 4$. The answer is $\\\\boxed{4}$.", "4").reason
'boxed:exact'
>>> grade_response("We find $x = \\\\boxed{1}$ or $x = \\\\boxed{-2}$.", "-2, 1").correct
True
"""

from __future__ import annotations

import threading

from asym_eval.answers import last_boxed, math_verify_candidate, normalize, split_top_level
from asym_eval.pool import thread_grading_service
from asym_eval.verdicts import (
    DEFAULT_TIMEOUT_S,
    GRADER_VERSION,
    MAX_FREE_READING_CHARS,
    GradeRequest,
    GradeResult,
    grade_in_this_process,
    grade_without_parser,
    parse_reference,
)

__all__ = [  # what callers import from here: the entry point and the names it is made of
    "DEFAULT_TIMEOUT_S",
    "GRADER_VERSION",
    "MAX_FREE_READING_CHARS",
    "GradeRequest",
    "GradeResult",
    "grade_in_this_process",
    "grade_response",
    "grade_without_parser",
    "last_boxed",
    "math_verify_candidate",
    "normalize",
    "parse_reference",
    "split_top_level",
]


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
    request = GradeRequest(response, answer, multiple_answers, tolerance, boxed_only)
    return thread_grading_service(timeout_s).grade(request)
