"""The frame log loss stays finite where TFMA's own BinaryCrossEntropy turns NaN."""

import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that
from tensorflow_model_analysis.metrics import cross_entropy_metrics, metric_types

from deepfake_detection.evaluation import frame_metrics, video_scores


def _face(label: float, prediction: float, weight: float = 1.0) -> metric_types.StandardMetricInputs:
    return metric_types.StandardMetricInputs(
        labels=np.array([label]), predictions=np.array([prediction], np.float32), example_weights=np.array([weight])
    )


def _combine(metric: metric_types.Metric, faces: list, check) -> None:  # noqa: ANN001
    [computation] = metric.computations(example_weighted=True)
    with beam.Pipeline() as pipeline:
        result = pipeline | beam.Create(faces, reshuffle=False) | beam.CombineGlobally(computation.combiner)
        assert_that(result, check)


# A real face scored exactly 1.0 (a saturated float32 sigmoid), beside ordinary faces.
FACES = [_face(0, 1.0), _face(1, 0.9), _face(0, 0.2), _face(1, 0.6, weight=2.0)]


def test_log_loss_of_a_saturated_face_is_finite_and_weighted():
    expected = (
        video_scores.log_loss(np.array([1.0]), np.array([0]))
        + video_scores.log_loss(np.array([0.9]), np.array([1]))
        + video_scores.log_loss(np.array([0.2]), np.array([0]))
        + 2 * video_scores.log_loss(np.array([0.6]), np.array([1]))
    ) / 5

    def check(outputs):
        [values] = outputs
        [(key, value)] = values.items()
        assert key.name == frame_metrics.LOG_LOSS_NAME
        assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-5)

    _combine(frame_metrics.FrameLogLoss(), FACES, check)


def test_tfmas_own_cross_entropy_is_not_finite_on_the_same_faces():
    """The reason for the metric: if TFMA ever clips, this fails and FrameLogLoss can go."""

    def check(outputs):
        [values] = outputs
        assert not math.isfinite(next(iter(values.values())))

    with np.errstate(divide="ignore", invalid="ignore"):
        _combine(cross_entropy_metrics.BinaryCrossEntropy(), FACES, check)
