"""Loss pieces and metrics on hand-built tensors, with the arithmetic in comments."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asym_openrlhf.algorithms.losses import (
    TokenControl,
    aggregate_loss,
    clip_cov_drop,
    clipped_surrogate_loss,
    controlled_token_loss,
    cov_generator,
    entropy_regularized,
    entropy_shaped_advantages,
    kl_cov_select,
    masked_mean,
    stochastic_count,
    token_covariance,
    top_entropy_keep,
)
from asym_openrlhf.algorithms.metrics import (
    covariance_by_accuracy,
    ema,
    entropy_by_correctness,
    entropy_pos_neg,
    group_accuracy_histogram,
    group_logp_adv_covariance,
    positive_logprob_gain,
    solved_fractions,
    token_entropy,
    unique_correct_fraction,
)


def test_surrogate_at_ratio_one_is_minus_advantage():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    loss, clipped = clipped_surrogate_loss(logp, logp, torch.tensor([[2.0, -1.0]]))
    assert loss.tolist() == [[-2.0, 1.0]] and not clipped.any()


def test_clip_higher_uses_separate_bounds():
    # ratios 1.5 (A = +1) and 0.5 (A = -1); ε_low = 0.2, ε_high = 0.28
    # +1: min(1.5, 1.28) = 1.28 → loss -1.28;  -1: min(-0.5, -0.8) = -0.8 → loss 0.8
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))
    loss, clipped = clipped_surrogate_loss(new, old, torch.tensor([[1.0, -1.0]]), eps_low=0.2, eps_high=0.28)
    assert loss[0].tolist() == pytest.approx([-1.28, 0.8])
    assert clipped.tolist() == [[True, True]]
    # inside the band nothing is clipped: ratio 1.25 < 1.28 with A = +1 → loss -1.25
    loss, clipped = clipped_surrogate_loss(
        torch.log(torch.tensor([[1.25]])), torch.zeros(1, 1), torch.ones(1, 1), 0.2, 0.28
    )
    assert loss.item() == pytest.approx(-1.25) and not clipped.any()


def test_token_mean_weighs_every_token_equally():
    loss = torch.tensor([[1.0, 1.0, 1.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    # (1 + 1 + 1 + 4) / 4 tokens = 1.75 (a per-sequence mean would give (1 + 4) / 2 = 2.5)
    assert aggregate_loss(loss, mask, "token_mean").item() == pytest.approx(1.75)


def test_dr_grpo_divides_sums_by_a_constant():
    loss = torch.tensor([[1.0, 1.0, 1.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    # sequence sums 3 and 4, each / 8, then mean over 2 sequences: (0.375 + 0.5) / 2 = 0.4375
    assert aggregate_loss(loss, mask, "seq_sum_constant", max_response_len=8).item() == pytest.approx(0.4375)
    with pytest.raises(ValueError, match="max_response_len"):
        aggregate_loss(loss, mask, "seq_sum_constant")
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate_loss(loss, mask, "seq_mean")


def test_masked_mean_of_empty_mask_is_zero():
    assert masked_mean(torch.ones(2, 3), torch.zeros(2, 3)).item() == 0.0


def test_entropy_advantage_values():
    # α = 0.4, κ = 2: A = 1, H = 1 → 1 + min(0.4, 0.5) = 1.4;  A = 1, H = 5 → 1 + min(2, 0.5) = 1.5
    # A = -1, H = 5 → -1 + min(2, 0.5) = -0.5 (sign kept);  A = 0 → 0
    adv = torch.tensor([[1.0], [1.0], [-1.0], [0.0]])
    ent = torch.tensor([[1.0], [5.0], [5.0], [3.0]])
    assert entropy_shaped_advantages(adv, ent, alpha=0.4, kappa=2).flatten().tolist() == pytest.approx(
        [1.4, 1.5, -0.5, 0.0]
    )
    with pytest.raises(ValueError, match="kappa"):
        entropy_shaped_advantages(adv, ent, kappa=1.0)


@settings(max_examples=200, deadline=None)
@given(
    a=st.floats(-50, 50, allow_nan=False),
    h=st.floats(0, 20, allow_nan=False),
    alpha=st.floats(0, 5),
    kappa=st.floats(1.01, 10),
)
def test_entropy_advantage_never_flips_sign(a, h, alpha, kappa):
    shaped = entropy_shaped_advantages(torch.tensor([a]), torch.tensor([h]), alpha, kappa).item()
    assert shaped * a >= 0 and (a != 0 or shaped == 0)


def test_entropy_advantage_bonus_carries_no_gradient():
    # the entropy enters the advantage as a constant: no gradient may flow back into the policy through it
    ent = torch.tensor([1.0], requires_grad=True)
    assert not entropy_shaped_advantages(torch.tensor([1.0]), ent).requires_grad


def test_entropy_regularization_subtracts_coef_times_entropy():
    assert entropy_regularized(torch.tensor(1.0), torch.tensor(2.0), 0.001).item() == pytest.approx(0.998)


def test_token_entropy_closed_forms():
    # uniform over 4 → log 4; one-hot-ish → ~0; two-way 50/50 → log 2
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0], [3.0, 3.0, -1e4, -1e4]])
    assert token_entropy(logits).tolist() == pytest.approx([math.log(4), 0.0, math.log(2)], abs=1e-5)


def test_solved_fractions_and_histogram():
    correct = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 0]])
    assert solved_fractions(correct) == {"rollout/all_solved_frac": 0.25, "rollout/none_solved_frac": 0.5}
    # c = 0: two groups, c = 1: one, c = 3: one
    assert group_accuracy_histogram(correct).tolist() == [0.5, 0.25, 0.0, 0.25]


def test_group_covariance():
    # logp (-1, -3), A (+1, -1): centred (1, -1)·(1, -1) → (1 + 1)/2 = 1
    # second group: A all 0 → 0
    mean_logp = torch.tensor([[-1.0, -3.0], [-2.0, -5.0]])
    advantages = torch.tensor([[1.0, -1.0], [0.0, 0.0]])
    cov = group_logp_adv_covariance(mean_logp, advantages)
    assert cov.tolist() == pytest.approx([1.0, 0.0])
    assert covariance_by_accuracy(cov, torch.tensor([[1, 0], [1, 1]])) == {1: 1.0, 2: 0.0}


def test_positive_logprob_gain():
    old = torch.zeros(3, 2)
    new = torch.tensor([[0.5, 0.5], [1.0, 9.0], [-1.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1]])
    # correct rollouts 0 and 2: sums 1.0 and -1.0 → mean 0.0; the masked 9.0 is ignored
    assert positive_logprob_gain(new, old, mask, torch.tensor([1, 0, 1])) == pytest.approx(0.0)
    assert positive_logprob_gain(new, old, mask, torch.tensor([0, 1, 0])) == pytest.approx(1.0)
    assert positive_logprob_gain(new, old, mask, torch.tensor([0, 0, 0])) is None


def test_ema_matches_paper_smoothing():
    # s1 = 1; s2 = 0.7·1 + 0.3·2 = 1.3; None carries 1.3; s4 = 0.7·1.3 + 0.3·0 = 0.91
    assert ema([1.0, 2.0, None, 0.0], 0.7) == pytest.approx([1.0, 1.3, 1.3, 0.91])
    assert ema([None, 1.0]) == [None, 1.0]


def test_entropy_split_by_correctness():
    # rollout 0 (correct): tokens 1, 3 (the masked 100 is ignored); rollout 1 (wrong): 2; rollout 2 (correct): 5
    entropy = torch.tensor([[1.0, 3.0, 100.0], [2.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 0, 0]])
    parts = entropy_by_correctness(entropy, mask, torch.tensor([1, 0, 1]))
    assert {k: v.item() for k, v in parts.items()} == {
        "pos_sum": 9.0,
        "pos_tokens": 3.0,
        "neg_sum": 2.0,
        "neg_tokens": 1.0,
    }
    assert entropy_pos_neg(parts) == {"actor/entropy_pos": 3.0, "actor/entropy_neg": 2.0}
    # no wrong rollout: that side is None, not 0
    assert entropy_pos_neg(entropy_by_correctness(entropy, mask, torch.ones(3))) == {
        "actor/entropy_pos": pytest.approx(11 / 4),
        "actor/entropy_neg": None,
    }


@pytest.mark.parametrize(
    "responses,correct,expected",
    [
        ([["a", "a", "b", "x"]], [[1, 1, 1, 0]], 2 / 3),  # 3 correct, 2 distinct; the wrong "x" is ignored
        ([["a", "b"], ["c", "c"]], [[1, 1], [1, 1]], 3 / 4),  # pooled: (2 + 1) / (2 + 2)
        ([["a", "a"], ["z", "y"]], [[1, 1], [0, 0]], 1 / 2),  # the unsolved group does not count
        ([["a", "a"]], [[0, 0]], None),  # no correct rollout at all
    ],
)
def test_unique_correct_fraction(responses, correct, expected):
    assert unique_correct_fraction(responses, torch.tensor(correct)) == (
        expected if expected is None else pytest.approx(expected)
    )


# ---------------------------------------------------------------- token-level entropy control


def _token_batch():
    # 2 rollouts x 3 tokens; the last token of rollout 1 is padding
    log_probs = torch.tensor([[-0.1, -2.0, -0.5], [-1.0, -0.2, -9.0]])
    advantages = torch.tensor([[2.0], [-1.0]]).expand(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    return log_probs, advantages, mask


def test_token_covariance_is_the_centred_product_over_response_tokens():
    log_probs, advantages, mask = _token_batch()
    # masked means: A (2+2+2-1-1)/5 = 0.8; log pi (-0.1-2-0.5-1-0.2)/5 = -0.76
    cov = token_covariance(log_probs, advantages, mask)
    assert cov[0, 0].item() == pytest.approx((2 - 0.8) * (-0.1 + 0.76))
    assert cov[1, 1].item() == pytest.approx((-1 - 0.8) * (-0.2 + 0.76))
    assert not cov.requires_grad


def test_covariance_selections_and_top_entropy_pick_the_documented_tokens():
    mask = torch.ones(2, 5, dtype=torch.long)
    cov = torch.tensor([[0.5, 2.0, 3.0, 9.0, -1.0], [1.5, 4.9, 0.0, 6.0, 2.5]])
    # KL-Cov: 0.3 * 10 = 3 tokens (a whole number: no rounding to draw) of largest covariance: 9, 6, 4.9
    assert kl_cov_select(cov, mask, 0.3).nonzero().tolist() == [[0, 3], [1, 1], [1, 3]]
    # Clip-Cov: eligible 1 < cov < 5 and not already clipped: (0,1) 2.0, (0,2) 3.0, (1,0) 1.5, (1,1) 4.9,
    # (1,4) 2.5 minus the clipped (0,2); 0.2 * 10 = 2 of them at random
    clipped = torch.zeros(2, 5, dtype=torch.bool)
    clipped[0, 2] = True
    drop = clip_cov_drop(cov, mask, clipped, 0.2, 1.0, 5.0, torch.Generator().manual_seed(0))
    assert int(drop.sum()) == 2
    assert set(map(tuple, drop.nonzero().tolist())) <= {(0, 1), (1, 0), (1, 1), (1, 4)}
    # top entropy: ceil(0.2 * 10) = 2 highest-entropy tokens; padding never kept
    entropy = torch.arange(10.0).view(2, 5)
    padded = mask.clone()
    padded[1, 4] = 0
    assert top_entropy_keep(entropy, padded, 0.2).nonzero().tolist() == [[1, 2], [1, 3]]


def test_controlled_token_loss_without_control_is_the_clipped_surrogate():
    log_probs, advantages, mask = _token_batch()
    old = log_probs - 0.3  # ratio e^0.3 = 1.35: the clip at 1.2 is active where A > 0
    plain = clipped_surrogate_loss(log_probs, old, advantages, 0.2, 0.2)
    controlled = controlled_token_loss(log_probs, old, advantages, mask, 0.2, 0.2)
    assert torch.equal(plain[0], controlled[0]) and torch.equal(plain[1] & mask.bool(), controlled[1])
    assert controlled[1].any() and not controlled[2].any()


def test_kl_cov_drops_the_clip_and_penalises_its_tokens():
    log_probs, advantages, mask = _token_batch()
    old = log_probs - 0.3
    control = TokenControl(cov_mode="kl_cov", cov_ratio=0.2, kl_cov_coef=2.0)  # 0.2 * 5 = 1 token
    loss, clipped, cov = controlled_token_loss(log_probs, old, advantages, mask, 0.2, 0.2, control)
    selected = kl_cov_select(token_covariance(log_probs, advantages, mask), mask, 0.2)
    want = -math.exp(0.3) * advantages + 2.0 * 0.3 * selected  # unclipped surrogate + coef * |log-ratio|
    assert torch.allclose(loss, want) and int(selected.sum()) == 1
    assert torch.equal(cov, selected) and not clipped.any()  # no ratio clip under KL-Cov


def test_clip_cov_and_top_entropy_cut_the_gradient_of_exactly_their_tokens():
    log_probs, advantages, mask = _token_batch()
    log_probs = log_probs.clone().requires_grad_(True)
    entropy = torch.tensor([[0.1, 3.0, 0.2], [2.0, 0.3, 9.0]])  # the padded 9.0 must not be kept
    control = TokenControl(top_entropy_rho=0.4)  # ceil(0.4 * 5) = 2 tokens: (0,1) and (1,0)
    loss, clipped, cov = controlled_token_loss(
        log_probs, log_probs.detach(), advantages, mask, 0.2, 0.2, control, entropy
    )
    (loss * mask).sum().backward()
    kept = log_probs.grad != 0
    assert kept.nonzero().tolist() == [[0, 1], [1, 0]]
    assert loss[0, 1].item() == pytest.approx(-2.0 / 0.4)  # -ratio * A at ratio 1, scaled by 1/rho
    assert not clipped.any() and not cov.any()  # ratio 1: no PPO clip; no Cov mode


def test_stochastic_count_has_the_expected_mean():
    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([stochastic_count(0.48, generator) for _ in range(20_000)], dtype=torch.float)
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    # Bernoulli(0.48): sd of the mean sqrt(0.48 * 0.52 / 20000) = 0.0035; verl's max(1, int(0.48)) is 1
    assert abs(draws.mean().item() - 0.48) < 4 * 0.0035
    assert stochastic_count(3.0, generator) == 3


def _script_micro_batches(rows, max_len, mean_len, count, seed=0):
    """``count`` micro-batches of ``rows`` responses padded to ``max_len``, lengths uniform around ``mean_len``:
    the shapes the launch scripts train on. Log-probs as a policy's (<= 0); one advantage per rollout, +2 and -2
    in turn, so that Clip-Cov has many eligible tokens (1 < Cov < 5) and only the count limits it."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(count):
        lengths = torch.randint(mean_len // 6, 2 * mean_len - mean_len // 6, (rows, 1), generator=generator)
        mask = (torch.arange(max_len)[None, :] < lengths).long()  # (rows, max_len)
        log_probs = -torch.empty(rows, max_len).exponential_(1.0, generator=generator)
        advantages = (2.0 - 4.0 * (torch.arange(rows) % 2))[:, None].expand(rows, max_len) * mask
        yield log_probs, advantages, mask


@pytest.mark.parametrize("mode", ["kl_cov", "clip_cov"])
@pytest.mark.parametrize(
    "rows,max_len,mean_len",
    [(2, 4096, 1200), (4, 2560, 600)],  # --train.micro_batch_size of qwen3-4b/ and of qwen2.5-math-1.5b/
    ids=["qwen3-4b", "qwen2.5-math-1.5b"],
)
def test_cov_acts_on_the_configured_fraction_at_the_scripts_micro_batches(mode, rows, max_len, mean_len):
    """2e-4 x about 2,400 tokens is 0.48 a micro-batch: verl's max(1, int(.)) acted on 1 (4.2e-4 for KL-Cov,
    the issue measured 3.0e-4 for Clip-Cov). The stochastic count gives 2e-4 within sampling error."""
    ratio, selected, tokens, variance = 2e-4, 0, 0, 0.0
    control = TokenControl(cov_mode=mode, cov_ratio=ratio)
    batches = _script_micro_batches(rows, max_len, mean_len, count=1000)
    for index, (log_probs, advantages, mask) in enumerate(batches):
        _, _, cov = controlled_token_loss(
            log_probs, log_probs, advantages, mask, 0.2, 0.2, control, generator=cov_generator(7, 0, index)
        )
        expected = ratio * int(mask.sum())
        selected, tokens = selected + int(cov.sum()), tokens + int(mask.sum())
        variance += (expected % 1) * (1 - expected % 1)  # of one stochastic count
    assert abs(selected - ratio * tokens) < 4 * math.sqrt(variance), (selected / tokens, ratio)


def test_cov_draws_depend_only_on_seed_step_and_micro_batch():
    """Two ranks holding the same micro-batch (ring attention, tensor parallelism) pick the same tokens even
    when torch's global generator differs between them; another step picks others."""
    log_probs, advantages, mask = next(_script_micro_batches(2, 4096, 1200, count=1))
    control = TokenControl(cov_mode="clip_cov", cov_ratio=0.01)  # about 24 of the eligible tokens

    def rank(global_seed, step):
        torch.manual_seed(global_seed)
        generator = cov_generator(seed=42, step=step, micro_batch=3)
        return controlled_token_loss(
            log_probs, log_probs, advantages, mask, 0.2, 0.2, control, generator=generator
        )[2]

    first = rank(global_seed=0, step=5)
    assert first.sum() > 0 and torch.equal(first, rank(global_seed=1, step=5))
    assert not torch.equal(first, rank(global_seed=0, step=6))
