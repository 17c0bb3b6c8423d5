"""The sampler and the training forward agree with one plain forward over every row (float rounding apart)."""

from __future__ import annotations

import pytest
import torch

from asym_openrlhf.lite.rollout import generate, response_logprobs
from asym_openrlhf.lite.tiny import TIERS, build_tokenizer

# Prompts of different lengths (left padding) and repeats (groups that share a prompt), out of order.
PROMPTS = ["Q:3+4=A:", "Q:12+9=A:", "Q:3+4=A:", "Q:7+75=A:", "Q:12+9=A:", "Q:3+4=A:"]


@pytest.fixture(scope="module")
def model_and_prompts():
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(TIERS["quick"].checkpoint_dir, dtype=torch.float32)
    return model.eval(), [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS], tokenizer


def sample(model, prompts, tokenizer, temperature=1.0, seed=0, max_new_tokens=8):
    return generate(
        model,
        prompts,
        max_new_tokens=max_new_tokens,
        eos_id=tokenizer.eos_token_id,
        pad_id=tokenizer.pad_token_id,
        temperature=temperature,
        generator=torch.Generator().manual_seed(seed),
        with_logprobs=True,
    )


def test_sampler_logprobs_match_a_full_forward(model_and_prompts):
    model, prompts, tokenizer = model_and_prompts
    for temperature in (1.0, 0.0):
        batch = sample(model, prompts, tokenizer, temperature=temperature)
        with torch.no_grad():
            logp, entropy = response_logprobs(model, batch, with_entropy=True)
        mask = batch.response_mask.bool()
        assert torch.allclose(batch.logprobs[mask], logp[mask], atol=1e-5)
        assert torch.allclose(batch.entropy[mask], entropy[mask], atol=1e-5)
    # A row's tokens do not depend on which rows share its batch (the prompt cache is copied, not mixed).
    alone = sample(model, prompts[1:2], tokenizer, temperature=0.0)
    together = sample(model, prompts, tokenizer, temperature=0.0)
    width = together.prompt_width
    response = together.input_ids[1, width:][together.response_mask[1].bool()]
    assert torch.equal(alone.input_ids[0, alone.prompt_width :][alone.response_mask[0].bool()], response)


def test_shared_prompt_forward_matches_one_forward_with_gradients(model_and_prompts):
    model, prompts, tokenizer = model_and_prompts
    batch = sample(model, prompts, tokenizer, seed=3)
    mask = batch.response_mask.float()
    results = {}
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        logp, entropy = response_logprobs(model, batch, with_entropy=True, share_prompts=share)
        ((logp + 0.1 * entropy) * mask).sum().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results[share] = (logp.detach(), entropy.detach(), grads)
    (logp, entropy, grads), (shared_logp, shared_entropy, shared_grads) = results[False], results[True]
    assert torch.allclose(logp * mask, shared_logp * mask, atol=1e-5)
    assert torch.allclose(entropy * mask, shared_entropy * mask, atol=1e-5)
    assert (grads - shared_grads).norm() <= 1e-4 * grads.norm()
    # One response token: only the prompt pass runs.
    one = sample(model, prompts, tokenizer, max_new_tokens=1)
    with torch.no_grad():
        plain, _ = response_logprobs(model, one)
        shared, _ = response_logprobs(model, one, share_prompts=True)
    assert shared.shape == plain.shape == (len(prompts), 1)
    assert torch.allclose(plain, shared, atol=1e-5)
