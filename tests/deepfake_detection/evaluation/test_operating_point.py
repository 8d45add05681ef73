"""Fitting the operating point: thresholds within budget, calibration, tiers, intervals."""

import numpy as np
import pytest

from deepfake_detection.evaluation import operating_point as op


def _scores(seed=0, reals=40, fakes=40, separation=1.5):
    rng = np.random.default_rng(seed)
    return op.sigmoid(rng.normal(-1, 1, reals)), op.sigmoid(rng.normal(-1 + separation, 1, fakes))


def test_no_held_out_real_scores_at_or_above_the_fake_threshold_when_too_few_to_measure():
    reals, fakes = _scores()
    fitted = op.fit_operating_point(reals, fakes, false_alarm_budget=0.01)
    assert fitted.fake_method == op.METHOD_TOLERANCE_BOUND  # 40 reals cannot measure 1 %: that takes 300
    calibrated = [fitted.point.calibrate(s) for s in reals]
    assert max(calibrated) < fitted.point.fake_threshold
    assert "too few to measure" in fitted.notes()


def test_the_tolerance_bound_holds_the_budget_on_new_reals_from_the_same_distribution():
    new_reals, _ = _scores(seed=99, reals=20000)
    within = 0
    for seed in range(20):
        reals, fakes = _scores(seed=seed, reals=30)
        point = op.fit_operating_point(reals, fakes, false_alarm_budget=0.01).point
        within += np.mean([point.calibrate(s) >= point.fake_threshold for s in new_reals]) <= 0.01
    assert within >= 17  # 95 % confidence: about 19 of 20 fits hold the budget


def test_with_enough_reals_the_threshold_is_the_empirical_quantile():
    reals, fakes = _scores(reals=1000)
    fitted = op.fit_operating_point(reals, fakes, false_alarm_budget=0.01)
    assert fitted.fake_method == op.METHOD_EMPIRICAL
    accused = sum(fitted.point.calibrate(s) >= fitted.point.fake_threshold for s in reals)
    assert 5 <= accused <= 10


def test_real_threshold_keeps_the_miss_budget_and_lies_below_the_fake_threshold():
    reals, fakes = _scores(fakes=1000)
    fitted = op.fit_operating_point(reals, fakes, miss_budget=0.1)
    point = fitted.point
    missed = np.mean([point.calibrate(s) < point.real_threshold for s in fakes])
    assert missed <= 0.1 and point.real_threshold <= point.fake_threshold


def test_tiers():
    point = op.OperatingPoint(fake_threshold=0.9, real_threshold=0.3)
    assert [point.verdict(p) for p in (0.95, 0.9, 0.5, 0.29, None)] == ["fake", "fake", "uncertain", "real", "no_face"]
    assert "Uncertain" in op.explain(point, 0.5) and "50%" in op.explain(point, 0.5)


def test_platt_calibration_lowers_the_calibration_error_of_overconfident_scores():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.05, 0.95, 4000)
    labels = (rng.uniform(size=truth.size) < truth).astype(int)
    overconfident = op.sigmoid(3 * op.logit(truth))
    slope, intercept = op.platt(overconfident, labels)
    assert slope == pytest.approx(1 / 3, abs=0.05)
    calibrated = op.sigmoid(slope * op.logit(overconfident) + intercept)
    assert op.expected_calibration_error(calibrated, labels) < op.expected_calibration_error(overconfident, labels) / 2


def test_platt_refuses_one_class_and_the_fit_says_it_is_uncalibrated():
    assert op.platt([0.1, 0.2], [0, 0]) is None
    fitted = op.fit_operating_point([0.1, 0.2, 0.3], [])
    assert not fitted.calibrated and fitted.real_method == op.METHOD_UNFITTED
    assert fitted.point.real_threshold == 0.0


def test_the_point_travels_as_a_vector_and_a_dict():
    point = op.OperatingPoint(0.8, 0.2, 1.5, -0.3)
    assert op.OperatingPoint.from_vector(point.as_vector()).as_vector() == pytest.approx(point.as_vector())
    assert op.OperatingPoint.from_dict({**point.to_dict(), "notes": "x"}) == point
    with pytest.raises(ValueError, match="real_threshold"):
        op.OperatingPoint(0.2, 0.8)


def test_rates_count_each_tier_with_wilson_intervals():
    point = op.OperatingPoint(0.8, 0.3)
    rates = op.rates(point, [0.9, 0.5, 0.1, 0.95, 0.85, 0.2], [0, 0, 0, 1, 1, 1])
    assert rates["reals_accused"]["count"] == 1 and rates["fakes_caught"]["count"] == 2
    assert rates["uncertain"]["count"] == 1
    low, high = rates["reals_accused"]["ci95"]
    assert 0 < low < 1 / 3 < high < 1
    assert op.wilson_interval(0, 0) == (0.0, 1.0)


def test_a_few_tightly_scored_reals_do_not_set_a_tight_threshold_when_the_fakes_spread():
    """Ten reals a few people, scored close together: the spread of both classes bounds how far people vary."""
    reals = op.sigmoid(np.linspace(-1.4, -1.0, 10))
    fakes = op.sigmoid(np.linspace(-2.0, 2.0, 10))
    pooled = op.fit_operating_point(reals, fakes).point
    alone = op.fit_operating_point(reals, op.sigmoid(np.linspace(-0.2, 0.2, 10))).point
    raw_threshold = [
        op.sigmoid((op.logit(p.fake_threshold) - p.calibration_intercept) / p.calibration_slope)
        for p in (pooled, alone)
    ]
    assert raw_threshold[0] > raw_threshold[1] + 0.2
    assert op.pooled_spread(np.array([0.5]), np.array([0.2])) == 0.0
