"""The hf backend generates a chunk of prompts per ``generate`` call (left padding): greedy responses equal
one-prompt-at-a-time ``generate`` (the backend before batching), and sampled responses keep their prompt's own
seed whatever the batch holds."""

import pytest
from asym_eval.generation import BackendOptions, HFBackend, Sampling, build_prompt, encode_prompt

# Different lengths, so the batch is padded.
PROBLEMS = ["Q:4+5=A:", "Q:12+30=A:", "What is 7 times 8?", "Q:3+99=A:", "x", "Compute 1+1 and box it."]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(str(tiny_model), BackendOptions())


@pytest.fixture(scope="module")
def prompts(backend):
    tokenizer = backend.tokenizer
    return [encode_prompt(tokenizer, build_prompt(tokenizer, p, "chat"), "chat") for p in PROBLEMS]


def unbatched_greedy(backend, ids, max_tokens):
    """What the hf backend did before batching: one prompt, no padding."""
    torch = backend.torch
    inputs = torch.tensor([ids])
    with torch.no_grad():
        output = backend.model.generate(
            inputs,
            attention_mask=torch.ones_like(inputs),
            do_sample=False,
            max_new_tokens=max_tokens,
            pad_token_id=backend.pad_id,
        )
    return backend.tokenizer.decode(output[0, inputs.shape[1] :], skip_special_tokens=True)


def test_batched_greedy_equals_one_prompt_at_a_time(backend, prompts):
    greedy = Sampling(temperature=0.0, top_p=1.0, max_tokens=20)
    batched = backend.generate(prompts, 3, greedy, seeds=list(range(len(prompts))))
    expected = [unbatched_greedy(backend, ids, 20) for ids in prompts]
    assert [texts for texts in batched] == [[text] * 3 for text in expected]
    assert len(set(expected)) == len(expected)  # varied text: the comparison can fail


def test_sampled_prompt_keeps_its_seed_in_any_batch(backend, prompts):
    sampling = Sampling(temperature=1.0, top_p=0.9, max_tokens=12)
    seeds = [100 + i for i in range(len(prompts))]
    together = backend.generate(prompts, 4, sampling, seeds)
    alone = [backend.generate([ids], 4, sampling, [seed])[0] for ids, seed in zip(prompts, seeds)]
    reversed_batch = backend.generate(prompts[::-1], 4, sampling, seeds[::-1])[::-1]
    assert together == alone == reversed_batch
    assert all(len(set(texts)) > 1 for texts in together)  # really sampled: k different responses
    other_seeds = backend.generate(prompts, 4, sampling, [seed + 1 for seed in seeds])
    assert other_seeds != together
