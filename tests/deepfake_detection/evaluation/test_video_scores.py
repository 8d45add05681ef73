"""Video aggregation rules on hand-made face scores, and the metrics on video scores."""

import math

import numpy as np
import pytest

from deepfake_detection.evaluation import video_scores as vs


def test_mean_rule():
    assert vs.aggregate([0.2, 0.4, 0.9], vs.RULE_MEAN) == pytest.approx(0.5)


def test_confident_rule_averages_the_confident_frames():
    many_high = [0.95] * 5 + [0.1] * 5
    assert vs.aggregate(many_high, vs.RULE_CONFIDENT) == pytest.approx(0.95)
    few_high = [0.95] * 3 + [0.4] * 7
    assert vs.aggregate(few_high, vs.RULE_CONFIDENT) == pytest.approx(np.mean(few_high))
    mostly_low = [0.05] * 19 + [0.6]
    assert vs.aggregate(mostly_low, vs.RULE_CONFIDENT) == pytest.approx(0.05)


def test_confidence_weighted_rule_leans_on_confident_scores():
    scores = [0.9, 0.55, 0.45, 0.5]
    result = vs.aggregate(scores, vs.RULE_CONFIDENCE_WEIGHTED)
    assert result == pytest.approx((0.4 * 0.81 / 0.82 + 0.05 * 0.3025 / 0.505 + 0.05 * 0.2025 / 0.505) / 0.5)
    assert result > vs.aggregate(scores, vs.RULE_MEAN)
    assert vs.aggregate([0.5, 0.5], vs.RULE_CONFIDENCE_WEIGHTED) == 0.5
    assert vs.aggregate([0.1, 0.9], vs.RULE_CONFIDENCE_WEIGHTED) == pytest.approx(0.5)


def test_a_video_is_as_fake_as_its_most_fake_person_and_no_face_has_no_score():
    assert vs.video_score({0: [0.1, 0.2], 1: [0.8, 0.9]}) == pytest.approx(0.85)
    assert vs.video_score({}) is None
    assert vs.video_score({0: []}) is None
    assert vs.aggregate([]) is None


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="median"):
        vs.aggregate([0.5], "median")


def test_auc_and_log_loss():
    assert vs.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert vs.roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert math.isnan(vs.roc_auc([1, 1], [0.2, 0.3]))
    assert vs.log_loss(np.array([0.5, 0.5]), np.array([0, 1])) == pytest.approx(math.log(2))
    assert vs.log_loss(np.array([1.0]), np.array([0])) < 17
