"""Binary math reward for OpenRLHF: ``--reward.remote_url /path/to/asym_openrlhf/reward/math_reward.py``.

OpenRLHF 0.11.2 loads this file by path inside every vLLM engine actor and calls
``reward_func(queries, prompts, labels)`` once per sample, from a worker thread (``asyncio.to_thread``).
Grading is the evaluation harness's (``asym_eval.grading.grade_response``: the answer wherever math-verify's
own extraction finds it, or the last ``\\boxed{}``, compared for mathematical
equivalence), so training reward and evaluation accuracy agree. It is safe off the main thread and has a
hard time limit, so a hostile completion such as ``\\boxed{9^{9^{9^9}}}`` costs at most ``TIMEOUT_S``
seconds (or ``$ASYM_REWARD_TIMEOUT_S``) and scores 0. Responses that need the parser are graded by a few
worker processes per engine, several at once (``$ASYM_GRADING_WORKERS``, default min(4, CPU count)).

A grader failure (an exception, a crashed worker) scores 0 with a warning. After
``MAX_CONSECUTIVE_FAILURES`` in a row the grader is taken as broken: the call raises with the last cause,
upstream logs it and leaves the sample without a reward, and the experience maker stops the step, rather
than train on zeros (under Pos-only, zeros push every rollout down).

Returns ``rewards`` and ``scores``, both the binary correctness: AsymGRPO-family estimators read ``scores``
(p must be the binary accuracy, SPEC §1); OpenRLHF's own estimators read ``rewards``.

>>> out = reward_func(["<prompt>Q?<answer>so \\\\boxed{4}"], ["<prompt>Q?"], ["4"])
>>> out["scores"].tolist(), out["extra_logs"]["answer_found"].tolist()
([1.0], [1.0])
"""

from __future__ import annotations

import logging
import os
import threading

import torch
from asym_eval.grading import grade_response

# Seconds per sample; MATH answers grade in milliseconds, only runaway expressions get near it. The
# environment variable is read at each call, in the vLLM engine actors: set it where `ray start` runs.
TIMEOUT_ENV = "ASYM_REWARD_TIMEOUT_S"
TIMEOUT_S = 5.0
MAX_CONSECUTIVE_FAILURES = 16
logger = logging.getLogger(__name__)


class _FailureRun:
    """Consecutive grader failures across the engine's reward threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0

    def failed(self, cause: str) -> None:
        """Count one; raise once the run reaches ``MAX_CONSECUTIVE_FAILURES``."""
        with self.lock:
            self.count += 1
            count = self.count
        if count >= MAX_CONSECUTIVE_FAILURES:
            raise RuntimeError(
                f"math_reward: the grader failed {count} times in a row (last: {cause}); refusing to score "
                "every sample 0"
            )
        logger.warning("math_reward: grading failed (%s); scoring 0", cause)

    def succeeded(self) -> None:
        with self.lock:
            self.count = 0


_failures = _FailureRun()


def response_text(query: str, prompt: str) -> str | None:
    """The generated part of ``query`` (OpenRLHF decodes prompt + response together), or None when the prompt
    cannot be found in it.

    The prompt is matched exactly, else ignoring whitespace (a decode that merges or splits spaces). The whole
    query is never graded in the default mode: the grader reads the final answer wherever math-verify would,
    so the problem's own numbers and formulas ("What is $2+2$?") could be read as the response's answer.
    """
    if query.startswith(prompt):
        return query[len(prompt) :]
    position = 0
    for char in prompt:
        if char.isspace():
            continue
        while position < len(query) and query[position].isspace():
            position += 1
        if position == len(query) or query[position] != char:
            return None
        position += 1
    return query[position:]


def grade(response: str, label: str, boxed_only: bool = False) -> tuple[bool, bool]:
    """``(correct, answer_found)``. A grader failure counts as wrong, until too many come in a row (above)."""
    try:
        timeout_s = float(os.environ.get(TIMEOUT_ENV, TIMEOUT_S))
        result = grade_response(response, str(label), timeout_s=timeout_s, boxed_only=boxed_only)
    except Exception as err:  # one grader bug must not take the rollout down with it
        _failures.failed(f"{type(err).__name__}: {err}")
        return False, False
    if result.reason.startswith("worker_crashed"):  # only this response is lost, but it was not graded
        _failures.failed(result.reason)
    else:
        _failures.succeeded()
    return bool(result.correct), result.extracted is not None


def grade_query(query: str, prompt: str, label: str) -> tuple[bool, bool]:
    """``grade`` on the response part of ``query``. A query whose prompt cannot be found is graded in the strict
    mode (the last ``\\boxed{}`` only, as the version-1 grader did: the prompt's only box is the instruction's
    empty one), with a warning, rather than letting the prompt's text count as an answer."""
    response = response_text(query, prompt)
    if response is not None:
        return grade(response, label)
    logger.warning("math_reward: the decoded query does not start with its prompt; grading its last box only")
    return grade(query, label, boxed_only=True)


def reward_func(queries, prompts, labels, **kwargs):
    """OpenRLHF reward-function API. Returns ``{"rewards", "scores", "extra_logs"}``, tensors of shape (N,)."""
    graded = [grade_query(q, p, label) for q, p, label in zip(queries, prompts, labels)]
    scores = torch.tensor([float(correct) for correct, _ in graded])
    answer_found = torch.tensor([float(found) for _, found in graded])
    return {"rewards": scores, "scores": scores.clone(), "extra_logs": {"answer_found": answer_found}}
