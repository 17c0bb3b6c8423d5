"""The math reward file, loaded and called the way OpenRLHF 0.11.2 does it: by path, through
``SingleTurnAgentExecutor``, from a worker thread (``asyncio.to_thread``), one sample per call."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import upstream_support  # noqa: E402

upstream_support.install()

from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: E402

REWARD_FILE = Path(__file__).resolve().parents[1] / "asym_openrlhf" / "reward" / "math_reward.py"
PROMPT = (
    "<|im_start|>user\nWhat is $\\frac{1}{2} + \\frac{1}{4}$?\n\nPlease reason step by step, and put your final "
    "answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
)

# (response, label, expected score): shapes taken from real model outputs.
CASES = [
    (
        "We add: $\\frac{2}{4}+\\frac{1}{4}=\\frac{3}{4}$.\n\nThe answer is $\\boxed{\\frac{3}{4}}$.<|im_end|>",
        "\\frac{3}{4}",
        1.0,
    ),
    ("So the sum is $\\boxed{0.75}$<|im_end|>", "\\frac{3}{4}", 1.0),
    ("First I thought \\boxed{1}, but rechecking: \\boxed{\\dfrac34}.<|im_end|>", "\\frac{3}{4}", 1.0),
    ("The answer is $\\boxed{\\frac{2}{3}}$.<|im_end|>", "\\frac{3}{4}", 0.0),
    ("I am not sure how to add fractions.<|im_end|>", "\\frac{3}{4}", 0.0),  # no answer at all
    ("Truncated mid-sentence \\boxed{\\frac{3}{", "\\frac{3}{4}", 0.0),  # unclosed box
    # no box: read where math-verify's own extraction finds the final answer
    ("The final answer is $\\frac{3}{4}$. I hope it is correct.<|im_end|>", "\\frac{3}{4}", 1.0),
    ("Adding, we get\n\\[ \\frac{2}{3} \\]<|im_end|>", "\\frac{3}{4}", 0.0),
]
HOSTILE = [
    "Clearly the answer is $\\boxed{9^{9^{9^9}}}$.",
    "\\boxed{(10^8)!}",
    "\\boxed{" * 5000 + "}" * 4000,
    "\x00\x1b[2J" + "\\boxed{1}" * 2000,
]


@pytest.fixture(scope="module")
def executor():
    return SingleTurnAgentExecutor(remote_rm_url=str(REWARD_FILE))  # upstream's own loader


def grade(executor, response: str, label: str) -> dict:
    """Upstream's call: the decoded prompt + response as the query, from a worker thread."""
    (out,) = asyncio.run(executor._fetch_rewards_via_func([PROMPT + response], [PROMPT], [label]))
    return out


def test_upstream_loads_reward_func_from_the_file(executor):
    assert executor.reward_func.__name__ == "reward_func"


@pytest.mark.parametrize("response,label,expected", CASES)
def test_real_looking_completions(executor, response, label, expected):
    out = grade(executor, response, label)
    assert out["scores"].tolist() == [expected]
    assert out["rewards"].tolist() == [expected]
    assert set(out["extra_logs"]) == {"answer_found"}


def test_hostile_completions_score_zero_within_the_timeout(executor, monkeypatch):
    monkeypatch.setenv("ASYM_REWARD_TIMEOUT_S", "1.0")
    for response in HOSTILE:
        start = time.monotonic()
        out = grade(executor, response, "3")
        assert out["scores"].tolist() == [0.0]
        assert time.monotonic() - start < 1.0 + 4.0  # the limit plus starting / killing a grading process


def test_prompt_that_does_not_round_trip_is_still_graded(executor):
    # The decoded query need not start with the prompt text exactly; the instruction's empty \boxed{} must not
    # be taken for the answer, and the response's last box wins.
    (out,) = asyncio.run(
        executor._fetch_rewards_via_func(
            [PROMPT.replace("  ", " ") + " so \\boxed{3/4}"], ["different"], ["0.75"]
        )
    )
    assert out["scores"].tolist() == [1.0]
    (out,) = asyncio.run(executor._fetch_rewards_via_func([PROMPT + "no answer"], ["different"], ["0"]))
    assert out["scores"].tolist() == [0.0]


def test_the_prompts_own_numbers_never_count_as_the_answer(executor):
    # A problem whose statement holds its own answer as the last formula: grading the whole query in the default
    # mode would read "$2 \cdot 2$" as the response's answer (math-verify's last-expression rule).
    from asym_eval.grading import grade_response

    prompt = "<|im_start|>user\nWhat is $2 \\cdot 2$?  Think first.<|im_end|>\n<|im_start|>assistant\n"
    query = prompt.replace("  ", " ") + "I am not sure."
    assert grade_response(query, "4").correct  # the risk: the whole query is "correct"
    for decoded_prompt in [prompt, "different"]:  # re-spaced (aligned) / not found at all (last box only)
        (out,) = asyncio.run(executor._fetch_rewards_via_func([query], [decoded_prompt], ["4"]))
        assert out["scores"].tolist() == [0.0]
    (out,) = asyncio.run(executor._fetch_rewards_via_func([query + " So $4$."], [prompt], ["4"]))
    assert out["scores"].tolist() == [1.0]  # the aligned response's own answer still counts


@pytest.mark.parametrize("failure", ["exception", "crashed_worker"])
def test_a_run_of_grader_failures_raises_naming_the_cause(executor, failure):
    """One failure scores 0; MAX_CONSECUTIVE_FAILURES in a row raise, so that upstream drops the sample's reward
    and the experience maker stops the step instead of training on zeros; a success ends the run."""
    from asym_eval.grading import GradeResult

    module = executor.reward_func.__globals__  # the module upstream loaded by path
    module["_failures"].succeeded()
    real_grade_response = module["grade_response"]

    def broken(*args, **kwargs):
        if failure == "exception":
            raise RuntimeError("grading workers die while starting (exit code 1)")
        return GradeResult(False, None, "worker_crashed (exit code -9)")

    module["grade_response"] = broken
    try:
        limit = module["MAX_CONSECUTIVE_FAILURES"]
        assert limit == 16
        for _ in range(limit - 1):
            assert grade(executor, "\\boxed{3}", "3")["scores"].tolist() == [0.0]
        cause = "RuntimeError: grading workers die" if failure == "exception" else "worker_crashed"
        with pytest.raises(RuntimeError, match=rf"failed 16 times in a row \(last: {cause}"):
            grade(executor, "\\boxed{3}", "3")
        module["grade_response"] = real_grade_response
        assert grade(executor, "\\boxed{3}", "3")["scores"].tolist() == [1.0]  # ends the run
        module["grade_response"] = broken
        assert grade(executor, "\\boxed{3}", "3")["scores"].tolist() == [0.0]  # one failure: 0 again
    finally:
        module["grade_response"] = real_grade_response
        module["_failures"].succeeded()
