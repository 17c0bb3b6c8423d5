"""``--asym.check_weight_sync``: after each weight sync, do vLLM and the DeepSpeed policy hold the same weights?

Every engine continues a few training prompts greedily and reports the log-probability of each token it chose;
the policy actors compute the log-probabilities of the same tokens (at temperature 1, as vLLM reports them). The
largest absolute difference is logged as ``actor/weight_sync_logprob_diff`` and each comparison is appended to
``<--ckpt.path>/weight_sync_check.jsonl``. Both sides run the model in bf16 with different kernels, so they
agree to a few hundredths, not exactly; a sync that did nothing leaves vLLM on the previous weights, and the
difference then grows with every step the policy moves (``asym-rl rehearse`` judges it against a threshold).
"""

from __future__ import annotations

import json
import os

CHECK_PROMPTS = 4  # training prompts each engine continues
CHECK_TOKENS = 16  # at most this many greedy tokens each
LOG_FILE = "weight_sync_check.jsonl"
# The default largest |vLLM - policy| log-prob difference judged as agreeing. Both sides run bf16 with different
# kernels: a working sync measured 0.03-0.09 on the tiny model here in most runs, and 0.20 at one uncertain token
# (p about 0.5) in one run; vLLM against an fp32 forward of the saved checkpoint 0.17. One that did nothing, far
# more once the policy has moved (docs/train_on_gpus.md).
DEFAULT_TOLERANCE = 0.3


class WeightSyncError(RuntimeError):
    """vLLM's log-probs disagree with the policy's after a weight sync."""


def greedy_requests(tokenizer, prompts: list[str], max_new_tokens: int):
    """Token ids of ``prompts`` (as upstream's agent executor tokenizes them) and vLLM's sampling parameters."""
    from vllm import SamplingParams

    prompt_ids = [tokenizer(text=prompt, add_special_tokens=False)["input_ids"] for prompt in prompts]
    params = SamplingParams(temperature=0.0, max_tokens=min(CHECK_TOKENS, max_new_tokens), logprobs=0)
    return prompt_ids, params


def chosen_logprobs(output) -> tuple[list[int], list[float]]:
    """The tokens a vLLM ``RequestOutput`` generated and the log-probability it gave each."""
    completion = output.outputs[0]
    tokens = list(completion.token_ids)
    return tokens, [step[token].logprob for token, step in zip(tokens, completion.logprobs)]


def policy_batch(prompt_ids: list[list[int]], responses: list[list[int]], pad_id: int):
    """Left-padded prompts followed by right-padded responses, as upstream lays out rollouts.

    Returns ``(sequences, attention_mask, action_mask)``: ``(B, P + A)``, ``(B, P + A)``, ``(B, A)``.
    """
    import torch

    prompt_len = max(map(len, prompt_ids))
    response_len = max(1, max(map(len, responses)))
    rows, attention, action = [], [], []
    for prompt, response in zip(prompt_ids, responses):
        left, right = prompt_len - len(prompt), response_len - len(response)
        rows.append([pad_id] * left + prompt + response + [pad_id] * right)
        attention.append([0] * left + [1] * (len(prompt) + len(response)) + [0] * right)
        action.append([1] * len(response) + [0] * right)
    return torch.tensor(rows), torch.tensor(attention), torch.tensor(action, dtype=torch.bool)


def max_abs_difference(vllm_logprobs: list[list[float]], policy_logprobs) -> float:
    """Largest |vLLM - policy| log-probability over every generated token (``policy_logprobs``: a ``(B, A)``
    tensor). NaN where either side is not finite: weights that turned NaN on both sides agree on nothing, and
    ``max`` would drop a NaN."""
    import torch

    worst = 0.0
    for row, values in enumerate(vllm_logprobs):
        if values:
            expected = torch.tensor(values, dtype=torch.float32)
            observed = policy_logprobs[row, : len(values)].float()
            if not (torch.isfinite(expected).all() and torch.isfinite(observed).all()):
                return float("nan")
            worst = max(worst, (observed - expected).abs().max().item())
    return worst


def append_record(ckpt_path: str, record: dict) -> None:
    os.makedirs(ckpt_path, exist_ok=True)
    with open(os.path.join(ckpt_path, LOG_FILE), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")


def read_records(ckpt_path) -> list[dict]:
    path = os.path.join(ckpt_path, LOG_FILE)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
