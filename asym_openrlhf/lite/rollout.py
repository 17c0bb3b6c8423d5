"""Sampling and scoring of responses with any HF causal LM: left-padded prompts, KV cache, one batch.

Layout shared by sampling and training: a prompt block of width ``Lp`` (left-padded) followed by a response
block of width ``T`` (right-padded after EOS). Position ids count real tokens only, so a padded prompt sees
the same positions as an unpadded one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asym_openrlhf.algorithms.metrics import token_entropy


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, Lp + T) prompt block then response block
    attention_mask: torch.Tensor  # (B, Lp + T)
    response_mask: torch.Tensor  # (B, T) 1 on response tokens up to and including EOS
    prompt_width: int  # Lp
    # From the sampler, when asked: log pi(token) under the untempered policy, and the entropy there. (B, T)
    logprobs: torch.Tensor | None = None
    entropy: torch.Tensor | None = None

    def select(self, rows: torch.Tensor) -> Batch:
        def pick(tensor):
            return None if tensor is None else tensor[rows]

        return Batch(
            self.input_ids[rows],
            self.attention_mask[rows],
            self.response_mask[rows],
            self.prompt_width,
            pick(self.logprobs),
            pick(self.entropy),
        )


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt)
        mask[row, width - len(prompt) :] = 1
    return ids.to(device), mask.to(device)


def positions(attention_mask: torch.Tensor) -> torch.Tensor:
    return (attention_mask.cumsum(-1) - 1).clamp_min(0)


def _prefill(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor):
    """Run each distinct prompt once and copy its KV cache to every row that holds it.

    Returns the cache (B rows) and each row's logits at its last prompt position ``(B, V)``. A group of G
    rollouts shares one prompt, so this is G times less prompt compute than a forward over every row; the
    rows are the same numbers either way (a row's result does not depend on the other rows of its batch).
    """
    distinct, row_of = torch.unique(torch.cat([prompt_ids, prompt_mask], 1), dim=0, return_inverse=True)
    ids, mask = distinct.split(prompt_ids.shape[1], dim=1)
    out = model(
        input_ids=ids, attention_mask=mask, position_ids=positions(mask), use_cache=True, logits_to_keep=1
    )
    cache = out.past_key_values
    cache.reorder_cache(row_of)  # index_select along the batch: beam search's API, so any HF cache has it
    return cache, out.logits[:, -1][row_of]


@torch.no_grad()
def generate(
    model,
    prompts: list[list[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float,
    generator: torch.Generator | None,
    with_logprobs: bool = False,
) -> Batch:
    """Sample (temperature > 0) or decode greedily (temperature 0) one response per prompt.

    ``with_logprobs``: also keep each sampled token's log-prob and the entropy under the untempered policy, so
    the trainer needs no extra forward for the old log-probs (the KV-cached logits match a full forward to
    float rounding, about 1e-6).
    """
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)
    cache, logits = _prefill(model, prompt_ids, prompt_mask)
    attention = prompt_mask
    next_position = attention.sum(-1, keepdim=True)  # (B, 1)
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens, logprobs, entropies = [], [], []
    for step in range(max_new_tokens):
        logits = logits.float()  # (B, V)
        if temperature > 0:
            probs = torch.softmax(logits / temperature, dim=-1)
            token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        else:
            token = logits.argmax(-1)
        token = torch.where(finished, torch.full_like(token, pad_id), token)
        tokens.append(token)
        if with_logprobs:
            logprobs.append(torch.log_softmax(logits, dim=-1).gather(-1, token[:, None]).squeeze(-1))
            entropies.append(token_entropy(logits))
        finished |= token == eos_id
        if step == max_new_tokens - 1 or bool(finished.all()):
            break  # no forward for a token nothing will follow
        # Finished rows keep decoding pads (their outputs are discarded); one batch shape keeps the cache simple.
        attention = torch.cat([attention, attention.new_ones(len(prompts), 1)], dim=1)
        out = model(
            input_ids=token[:, None],
            attention_mask=attention,
            position_ids=next_position,
            past_key_values=cache,
            use_cache=True,
        )
        cache, logits = out.past_key_values, out.logits[:, -1]
        next_position = next_position + 1
    response = torch.stack(tokens, dim=1)  # (B, T)
    # Mask: every token up to and including the first EOS (all T tokens if the response never ended).
    ended_before = torch.cumsum((response == eos_id).long(), dim=1) - (response == eos_id).long()
    response_mask = (ended_before == 0).long()
    return Batch(
        input_ids=torch.cat([prompt_ids, response], dim=1),
        attention_mask=torch.cat([prompt_mask, response_mask], dim=1),
        response_mask=response_mask,
        prompt_width=prompt_ids.shape[1],
        logprobs=torch.stack(logprobs, dim=1) if with_logprobs else None,
        entropy=torch.stack(entropies, dim=1) if with_logprobs else None,
    )


def teacher_forced_batch(prompts: list[list[int]], responses: list[list[int]], pad_id: int, device) -> Batch:
    """Given prompts and responses (e.g. supervised targets ending in EOS) in the sampling layout."""
    prompt_ids, prompt_mask = left_pad(prompts, pad_id, device)
    width = max(len(r) for r in responses)
    response = torch.full((len(responses), width), pad_id, dtype=torch.long)
    response_mask = torch.zeros((len(responses), width), dtype=torch.long)
    for row, tokens in enumerate(responses):
        response[row, : len(tokens)] = torch.tensor(tokens)
        response_mask[row, : len(tokens)] = 1
    response, response_mask = response.to(device), response_mask.to(device)
    return Batch(
        torch.cat([prompt_ids, response], 1),
        torch.cat([prompt_mask, response_mask], 1),
        response_mask,
        prompt_ids.shape[1],
    )


def response_logprobs(model, batch: Batch, with_entropy: bool = False, share_prompts: bool = False):
    """Token log-probs ``(B, T)`` of the response tokens (and their entropies ``(B, T)`` if asked).

    ``share_prompts``: run each distinct prompt once (``_prefill``, with grad) and then only the response
    tokens, on that cache: the same math with G times less prompt compute for groups of G rollouts (about a
    third of a training forward and backward on addition), but other float rounding than one forward over
    every row, so it is off by default (the supervised warm-up keeps rebuilding byte-identically).
    """
    width, length = batch.prompt_width, batch.input_ids.shape[1] - batch.prompt_width
    if share_prompts:
        cache, first = _prefill(model, batch.input_ids[:, :width], batch.attention_mask[:, :width])
        logits = first[:, None]  # the last prompt position predicts the first response token
        if length > 1:  # the last response token predicts nothing, so it is not run
            mask = batch.attention_mask[:, :-1]
            out = model(
                input_ids=batch.input_ids[:, width:-1],
                attention_mask=mask,
                position_ids=positions(mask)[:, width:],
                past_key_values=cache,
                use_cache=True,
            )
            logits = torch.cat([logits, out.logits], dim=1)
    else:
        out = model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=positions(batch.attention_mask),
            use_cache=False,
        )
        logits = out.logits[:, width - 1 : -1]  # position t predicts token t + 1
    logits = logits.float()  # (B, T, V)
    targets = batch.input_ids[:, width:]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
    if not with_entropy:
        return logp, None
    return logp, token_entropy(logits)


def decode_responses(tokenizer, batch: Batch) -> list[str]:
    responses = batch.input_ids[:, batch.prompt_width :]
    return [
        tokenizer.decode(row[mask.bool()].tolist(), skip_special_tokens=True)
        for row, mask in zip(responses.cpu(), batch.response_mask.cpu())
    ]
