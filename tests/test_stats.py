"""Bootstrap intervals on cases with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot.bootstrap import (
    bootstrap_interval,
    mean_statistic,
    paired_bootstrap,
    percentile_interval,
    resample_indices,
)
from evaluation.metrics import NgramData, bleu_from_statistics, bleu_statistics


def test_constant_shift_has_a_zero_width_interval():
    # b = a + 0.25 on every item: every resample gives exactly 0.25
    a = np.random.default_rng(1).normal(size=50)
    result = paired_bootstrap(mean_statistic(a), mean_statistic(a + 0.25), 50, rounds=200)
    assert result.difference == pytest.approx(0.25)
    assert result.low == pytest.approx(0.25) and result.high == pytest.approx(0.25)
    assert result.significant and result.p_value == 0.0


def test_interval_of_a_mean_matches_the_normal_theory_width():
    # mean of 2,000 standard normal draws: the 95% interval is about +-1.96/sqrt(n) wide
    values = np.random.default_rng(0).normal(size=2000)
    interval = bootstrap_interval(mean_statistic(values), len(values), rounds=2000, seed=3)
    half_width = (interval.high - interval.low) / 2
    assert half_width == pytest.approx(1.96 / np.sqrt(2000), rel=0.1)
    assert interval.low < interval.estimate < interval.high


def test_pairing_removes_the_shared_noise():
    # huge per-context variation shared by both settings, a small true difference of 0.1:
    # the paired interval is tight around 0.1 and excludes 0
    rng = np.random.default_rng(0)
    context_effect = rng.normal(scale=10.0, size=300)
    a = context_effect + rng.normal(scale=0.1, size=300)
    b = context_effect + 0.1 + rng.normal(scale=0.1, size=300)
    paired = paired_bootstrap(mean_statistic(a), mean_statistic(b), 300, rounds=1000)
    assert paired.low > 0 and paired.high < 0.2 and paired.significant


def test_identical_settings_give_no_difference():
    a = np.random.default_rng(2).random(40)
    result = paired_bootstrap(mean_statistic(a), mean_statistic(a.copy()), 40, rounds=100)
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.significant and result.p_value == 1.0


def test_corpus_statistics_resample():
    hyps, refs = ["the cat sat on the mat", "a b c d e"], ["the cat sat on the mat", "x y z w v"]
    stats = bleu_statistics(hyps, refs)
    interval = bootstrap_interval(lambda idx: bleu_from_statistics(stats[idx]), 2, rounds=300)
    assert interval.low == pytest.approx(0.0) and interval.high == pytest.approx(100.0)
    # distinct-1 of {"a a", "b c"} resampled: [0,0] -> 1/4, [0,1] -> 3/4, [1,1] -> 2/4; the resamples'
    # median (1/2 with this seed) is 1/4 below the estimate 3/4, so the interval moves up by 1/4
    data = NgramData.from_replies(["a a", "b c"], 1)
    interval = bootstrap_interval(data.distinct, 2, rounds=200)
    assert (interval.estimate, interval.low, interval.high) == pytest.approx((0.75, 0.5, 1.0))


def test_interval_is_shifted_by_the_resampling_bias():
    # distinct-1 of 40 replies with disjoint words is 1.0; every resample repeats some replies and
    # scores below 1, so a plain percentile interval would exclude the estimate
    data = NgramData.from_replies([f"w{i}a w{i}b" for i in range(40)], 1)
    interval = bootstrap_interval(data.distinct, 40, rounds=300)
    assert interval.estimate == 1.0 and interval.low <= 1.0 <= interval.high


def test_seeded_and_validated():
    assert (resample_indices(5, 3, seed=7) == resample_indices(5, 3, seed=7)).all()
    with pytest.raises(ValueError, match="at least one item"):
        resample_indices(0, 10, seed=0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(mean_statistic([1.0, 2.0]), 2, level=95)


def test_interval_of_a_mean_matches_scipy_percentile_bootstrap_within_one_percent():
    from scipy.stats import bootstrap as scipy_bootstrap

    values = np.random.default_rng(5).exponential(scale=2.0, size=400)  # skewed, so the ends differ
    ours = bootstrap_interval(mean_statistic(values), len(values), rounds=4000, seed=1)
    theirs = scipy_bootstrap(
        (values,), np.mean, n_resamples=4000, method="percentile", confidence_level=0.95, random_state=2
    ).confidence_interval
    assert ours.low == pytest.approx(theirs.low, rel=0.01)
    assert ours.high == pytest.approx(theirs.high, rel=0.01)
    # the median-bias shift is ~0 for a mean: under 1% of the interval's width here (0.5%)
    low, _ = percentile_interval(values[resample_indices(400, 4000, seed=1)].mean(axis=1), 0.95)
    assert 0 < abs(float(low) - ours.low) < 0.01 * (ours.high - ours.low)


def test_percentile_interval_is_numpy_quantile_per_column():
    samples = np.arange(101, dtype=float)[:, None] * np.array([1.0, -1.0])  # (101, 2)
    low, high = percentile_interval(samples, 0.9)
    assert low == pytest.approx([5.0, -95.0]) and high == pytest.approx([95.0, -5.0])
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        percentile_interval(samples, 90)
