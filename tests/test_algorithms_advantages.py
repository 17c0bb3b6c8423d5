"""The estimator registry: closed-form values, an oracle loop, and properties over every group composition."""

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from asym_openrlhf.algorithms.advantages import (
    ESTIMATORS,
    PRESETS,
    AdvantageOptions,
    advantage_curves,
    compute_advantages,
    options_at,
    register_estimator,
)


def adv(name, rows, **options):
    return compute_advantages(name, torch.tensor(rows), AdvantageOptions(**options)).tolist()


# ---------------------------------------------------------------- closed-form values (arithmetic in comments)


def test_grpo_one_of_four():
    # mean 1/4; unbiased std = sqrt((0.75² + 3·0.25²)/3) = 0.5 → (1-0.25)/0.5 = 1.5, (0-0.25)/0.5 = -0.5
    assert adv("group_norm", [[1, 0, 0, 0]])[0] == pytest.approx([1.5, -0.5, -0.5, -0.5], abs=1e-5)


def test_asym_half_half_is_population_std_grpo():
    # p = 1/4: ((1-p)/p)^0.5 = sqrt(3) = 1.7321; -(p/(1-p))^0.5 = -1/sqrt(3) = -0.5774
    assert adv("asym_grpo", [[1, 0, 0, 0]], beta_pos=0.5, beta_neg=0.5)[0] == pytest.approx(
        [math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3), -1 / math.sqrt(3)], abs=1e-6
    )


def test_reinforce_is_plus_minus_one():
    assert adv("reinforce_pm1", [[1, 0, 1, 0], [1, 1, 1, 1], [0, 0, 0, 0]]) == [
        [1, -1, 1, -1],
        [1, 1, 1, 1],
        [-1, -1, -1, -1],
    ]


def test_main_preset_values():
    # G = 8, c = 2 → p = 1/4: A_pos = 3^0.9 = 2.6879, A_neg = -(1/3)^0.4 = -0.6444
    row = adv("main", [[1, 1, 0, 0, 0, 0, 0, 0]])[0]
    assert row[0] == pytest.approx(3**0.9, abs=1e-5)
    assert row[2] == pytest.approx(-((1 / 3) ** 0.4), abs=1e-5)


def test_boundaries_follow_eq10_with_zero_to_the_zero_one():
    all_wrong, all_right = [0] * 8, [1] * 8
    # Pos-only (0.5, 0): A_neg = -0^0 = -1 for an all-wrong group
    assert adv("pos_only", [all_wrong])[0] == [-1.0] * 8
    # Neg-only (0, 0.5): A_pos = 0^0 = +1 for an all-solved group
    assert adv("neg_only", [all_right])[0] == [1.0] * 8
    # any beta > 0: all-same groups get nothing
    for name in ("main", "symmetric", "group_norm", "dr_grpo", "pass_at_k"):
        assert adv(name, [all_wrong, all_right]) == [[0.0] * 8, [0.0] * 8], name


def test_spec_flip_check_values():
    # SPEC §2, G = 8, β = 0.5: EntDecrease A_pos(7/8) = sqrt(7) = 2.6458,
    # A_pos(1) = 2·sqrt(7) - sqrt(3) = 3.5595 (Eq. 15); EntIncrease mirrors it on the negative side (Eq. 16).
    dec_pos, dec_neg = advantage_curves("ent_decrease", 8)
    inc_pos, inc_neg = advantage_curves("ent_increase", 8)
    assert dec_pos[7] == pytest.approx(math.sqrt(7), abs=1e-4)
    assert dec_pos[8] == pytest.approx(3.5595, abs=1e-4)
    assert inc_neg[1] == pytest.approx(-math.sqrt(7), abs=1e-4)
    assert inc_neg[0] == pytest.approx(-3.5595, abs=1e-4)
    # the other channel is GRPO's (population std), untouched
    grpo_pos, grpo_neg = advantage_curves("asym_grpo", 8, AdvantageOptions(beta_pos=0.5, beta_neg=0.5))
    assert torch.equal(dec_neg, grpo_neg) and torch.equal(inc_pos, grpo_pos)


def test_dr_grpo_is_mean_centred():
    # mean 3/8: 1 - 3/8 = 0.625, 0 - 3/8 = -0.375
    assert adv("dr_grpo", [[1, 1, 1, 0, 0, 0, 0, 0]])[0] == pytest.approx([0.625] * 3 + [-0.375] * 5)


def test_pass_at_k_paper_setting_zeroes_groups_with_four_correct():
    # G = 8, K = 5: with >= 4 correct every 5-subset holds a success, so R̄ = 1, σ = 0 → advantage 0.
    for c in range(4, 9):
        assert adv("pass_at_k", [[1] * c + [0] * (8 - c)], k=5) == [[0.0] * 8]
    # c = 1: R̄ = 1 - C(7,5)/C(8,5) = 1 - 21/56 = 0.625, σ = sqrt(0.625·0.375) = 0.4841
    # A_pos = 0.375/0.4841 = 0.7746; A_neg = (0.375 - C(6,4)/C(7,4))/σ = (0.375 - 15/35)/σ = -0.1107
    row = adv("pass_at_k", [[1, 0, 0, 0, 0, 0, 0, 0]], k=5)[0]
    assert row[0] == pytest.approx(0.7746, abs=1e-4)
    assert row[1] == pytest.approx(-0.1107, abs=1e-4)


def test_pass_at_1_is_population_std_grpo():
    one = advantage_curves("pass_at_k", 8, AdvantageOptions(k=1))
    half = advantage_curves("asym_grpo", 8, AdvantageOptions(beta_pos=0.5, beta_neg=0.5))
    assert torch.allclose(one[0], half[0]) and torch.allclose(one[1], half[1])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name,group,options,message",
    [
        ("asym_grpo", [[1]], {}, "group_size must be an integer >= 2"),
        ("asym_grpo", [[1, 0]], {"beta_pos": -1.0}, "beta_pos must be a number in [0, 4]"),
        ("asym_grpo", [[1, 0]], {"beta_neg": float("nan")}, "beta_neg must be"),
        ("asym_grpo", [[1, 0]], {"flip": "both"}, "flip must be one of"),
        ("pass_at_k", [[1, 0, 0, 0]], {"k": 5}, "k must be <= the group size"),
        ("asym_grpo", [[1, 0]], {"scale_pos": -0.1}, "scale_pos must be a number in [0, 10]"),
        ("group_norm", [[1, 0]], {"scale_neg": float("inf")}, "scale_neg must be"),
        ("nope", [[1, 0]], {}, "unknown advantage estimator"),
    ],
)
def test_impossible_settings_raise(name, group, options, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compute_advantages(name, torch.tensor(group), AdvantageOptions(**options))


def test_shaped_rewards_are_refused():
    with pytest.raises(ValueError, match="binary"):
        compute_advantages("main", torch.tensor([[0.9, 0.0]]))


def test_reinforce_works_without_a_group():
    assert adv("reinforce_pm1", [[1], [0]]) == [[1.0], [-1.0]]


def test_openrlhf_only_names_are_refused_outside_the_launcher_with_the_name_to_use():
    """One name, one algorithm: ``reinforce`` is OpenRLHF's whitened REINFORCE, which only the launcher runs;
    the paper's +1/-1 is ``reinforce_pm1``. The names only OpenRLHF knows are exactly upstream's estimator
    choices that the registry does not have."""
    from asym_openrlhf.algorithms.advantages import OPENRLHF_ONLY
    from asym_openrlhf.integration.upstream import UPSTREAM_ESTIMATORS

    with pytest.raises(ValueError, match="OpenRLHF's own estimator.*reinforce_pm1"):
        compute_advantages("reinforce", torch.tensor([[1, 0]]))
    assert set(OPENRLHF_ONLY) == set(UPSTREAM_ESTIMATORS) - set(ESTIMATORS)


@pytest.mark.parametrize(
    "name,correct,wrong",
    [
        ("w_reinforce", 0.1, -1.0),  # Zhu et al. 2025: +lambda / -1, lambda = 0.1
        ("psr", 1.0, 0.0),  # positive samples only
        ("nsr", 0.0, -1.0),  # negative samples only
    ],
)
def test_weighted_reinforce_family(name, correct, wrong):
    # every group composition, the all-same ones included, gets the constant pair; no group needed
    rows = [[1, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]]
    want = [correct if r else wrong for row in rows for r in row]
    assert sum(adv(name, rows), []) == pytest.approx(want)
    assert sum(adv(name, [[1], [0]]), []) == pytest.approx([correct, wrong])


def test_channel_weights_scale_any_estimator():
    # GRPO on 1 of 4 correct is (1.5, -0.5, -0.5, -0.5); weights 2 and 0.5 give (3, -0.25, ...)
    assert adv("group_norm", [[1, 0, 0, 0]], scale_pos=2.0, scale_neg=0.5)[0] == pytest.approx(
        [3.0, -0.25, -0.25, -0.25], abs=1e-5
    )


def test_registering_twice_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_estimator("asym_grpo", "again", curves=lambda g, o: (None, None))


# ---------------------------------------------------------------- oracle: a per-rollout loop straight from SPEC


def oracle(name: str, rewards: list[int], opts: AdvantageOptions) -> list[float]:
    """Advantages of one group computed rollout by rollout in plain Python, from SPEC §2's formulas."""
    if name in PRESETS:
        name, opts = "asym_grpo", AdvantageOptions(**{**opts.__dict__, **PRESETS[name]})
    g, c = len(rewards), sum(rewards)
    p = c / g
    out = []
    for r in rewards:
        if name == "group_norm":
            mean = sum(rewards) / g
            std = math.sqrt(sum((x - mean) ** 2 for x in rewards) / (g - 1))
            out.append((r - mean) / (std + 1e-6))
        elif name == "dr_grpo":
            out.append(r - p)
        elif name == "pass_at_k":
            # Enumerate every K-subset: R̄ is the mean pass rate; a rollout's advantage is the mean pass rate
            # of the subsets that contain it, minus R̄, over σ. Independent of the closed form in the code.
            subsets = list(itertools.combinations(range(g), opts.k))
            mean_pass = sum(max(rewards[j] for j in s) for s in subsets) / len(subsets)
            sigma = math.sqrt(mean_pass * (1 - mean_pass))
            i = len(out)
            mine = [max(rewards[j] for j in s) for s in subsets if i in s]
            out.append(0.0 if sigma == 0 else (sum(mine) / len(mine) - mean_pass) / sigma)
        else:
            out.append(_asym_oracle(r, p, g, opts))
    # channel weights: the correct rollouts' values times scale_pos, the wrong ones' times scale_neg
    return [value * (opts.scale_pos if r else opts.scale_neg) for value, r in zip(out, rewards)]


def _asym_oracle(r: int, p: float, g: int, opts: AdvantageOptions) -> float:
    def pos(q):  # Eq. 10 with 0^0 = 1
        return ((1 - q) / q) ** opts.beta_pos

    def neg(q):
        return -((q / (1 - q)) ** opts.beta_neg)

    if r == 1:
        if opts.flip == "pos":  # EntDecrease, Eq. 15
            if p < 1:
                return pos(1 - p) if p > 0 else 0.0
            return 2 * pos(1 / g) - pos(2 / g)
        return pos(p)
    if opts.flip == "neg":  # EntIncrease, Eq. 16
        if p > 0:
            return neg(1 - p)
        return 2 * neg(1 - 1 / g) - neg(1 - 2 / g)
    return neg(p)


group_strategy = st.integers(min_value=2, max_value=12).flatmap(
    lambda g: st.lists(st.lists(st.integers(0, 1), min_size=g, max_size=g), min_size=1, max_size=6)
)
beta = st.floats(min_value=0.0, max_value=4.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    rows=group_strategy,
    name=st.sampled_from(sorted(ESTIMATORS)),
    beta_pos=beta,
    beta_neg=beta,
    flip=st.sampled_from(["none", "pos", "neg"]),
    k=st.integers(1, 12),
    scales=st.tuples(st.sampled_from([1.0, 0.0, 0.1, 2.5]), st.sampled_from([1.0, 0.0, 0.3, 10.0])),
)
def test_vectorised_code_equals_oracle_and_is_finite(rows, name, beta_pos, beta_neg, flip, k, scales):
    g = len(rows[0])
    opts = AdvantageOptions(
        beta_pos=beta_pos, beta_neg=beta_neg, flip=flip, k=min(k, g), scale_pos=scales[0], scale_neg=scales[1]
    )
    got = compute_advantages(name, torch.tensor(rows), opts)
    assert torch.isfinite(got).all()
    for row, got_row in zip(rows, got.tolist()):
        want = oracle(name, row, opts)
        # float32 output; large β make values up to 11^4 ≈ 1.5e4, so compare relatively
        assert got_row == pytest.approx(want, rel=1e-4, abs=1e-5), (name, row, opts)


@settings(max_examples=100, deadline=None)
@given(rows=group_strategy, name=st.sampled_from(sorted(ESTIMATORS)), seed=st.integers(0, 2**16))
def test_permutation_equivariance_within_a_group(rows, name, seed):
    correct = torch.tensor(rows)
    perm = torch.randperm(correct.shape[1], generator=torch.Generator().manual_seed(seed))
    opts = AdvantageOptions(k=min(5, correct.shape[1]))
    assert torch.equal(
        compute_advantages(name, correct[:, perm], opts), compute_advantages(name, correct, opts)[:, perm]
    )


@settings(max_examples=100, deadline=None)
@given(rows=group_strategy)
def test_grpo_equals_half_half_times_sqrt_g_minus_one_over_g(rows):
    # SPEC §2: GRPO (unbiased std) = AsymGRPO(0.5, 0.5)·sqrt((G-1)/G), up to GRPO's ε in the denominator.
    correct = torch.tensor(rows)
    g = correct.shape[1]
    half = compute_advantages("asym_grpo", correct, AdvantageOptions(beta_pos=0.5, beta_neg=0.5))
    assert torch.allclose(compute_advantages("group_norm", correct), half * math.sqrt((g - 1) / g), atol=1e-4)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_equal_their_definitions(preset):
    for g in (2, 3, 8, 16):
        defined = advantage_curves("asym_grpo", g, AdvantageOptions(**PRESETS[preset]))
        named = advantage_curves(preset, g, AdvantageOptions(beta_pos=3.0, beta_neg=3.0, flip="none"))
        assert torch.equal(defined[0], named[0]) and torch.equal(defined[1], named[1])


def test_device_and_dtype_follow_the_input():
    correct = torch.tensor([[True, False, False]])
    out = compute_advantages("main", correct)
    assert out.dtype == torch.float32 and out.device == correct.device and out.shape == (1, 3)


# ---------------------------------------------------------------- beta schedules


@pytest.mark.parametrize(
    "schedule,step,want_neg",
    [
        ("linear", 0, 0.4),  # the first step has the start value
        ("linear", 5, 0.7),  # halfway through 11 steps (0..10): 0.4 + 0.6 * 5/10
        ("linear", 10, 1.0),  # the last step has the end value
        ("cosine", 5, 0.7),  # (1 - cos(pi/2)) / 2 = 1/2 at the midpoint too
        ("cosine", 2, 0.4 + 0.6 * (1 - math.cos(math.pi * 0.2)) / 2),  # slow at the start: 0.457
        ("linear", 50, 1.0),  # past the end: held at the end
    ],
)
def test_options_at_moves_beta_along_its_schedule(schedule, step, want_neg):
    opts = AdvantageOptions(beta_pos=0.9, beta_neg=0.4, beta_schedule=schedule, beta_neg_end=1.0)
    at = options_at(opts, step, 11)
    assert (at.beta_pos, at.beta_neg) == pytest.approx((0.9, want_neg))  # no beta_pos_end: beta+ stays
    assert at.beta_schedule == "constant" and options_at(at, 0, 11) == at  # resolving again changes nothing


def test_constant_options_are_untouched_and_bad_schedules_raise():
    assert options_at(AdvantageOptions(), 7, 10) == AdvantageOptions()
    for bad, message in (
        (dict(beta_schedule="step"), "beta_schedule must be one of"),
        (dict(beta_schedule="linear"), "beta_schedule needs an end value"),
        (dict(beta_pos_end=0.5), "beta_schedule needs an end value"),
        (dict(beta_schedule="linear", beta_pos_end=4.5), "beta_pos_end must be a number in"),
    ):
        with pytest.raises(ValueError, match=message):
            AdvantageOptions(**bad).validate()
