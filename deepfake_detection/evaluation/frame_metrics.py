"""A TensorFlow Model Analysis metric: the log loss of face scores, with probabilities clipped.

TFMA's own `BinaryCrossEntropy` takes log(p) of the probability unclipped.
A float32 sigmoid saturates to exactly 0 or 1 for a confident face, and one
such face with the other label makes the whole split's log loss NaN (the main
job then printed "-" for a model whose AUC was fine). This one clips as Keras
and `video_scores.log_loss` do and reports under TFMA's name,
`binary_crossentropy`, so the report and any threshold read it unchanged.
"""

from typing import Iterable, Iterator, List, Optional, Tuple

import apache_beam as beam
from tensorflow_model_analysis.metrics import metric_types, metric_util
from tensorflow_model_analysis.proto import config_pb2

from deepfake_detection.evaluation import video_scores

LOG_LOSS_NAME = "binary_crossentropy"


class FrameLogLoss(metric_types.Metric):
    """The example-weighted mean log loss of every face's fake probability."""

    def __init__(self, name: str = LOG_LOSS_NAME):
        super().__init__(metric_util.merge_per_key_computations(_log_loss), name=name)


metric_types.register_metric(FrameLogLoss)


def _log_loss(
    name: str,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = "",
    output_name: str = "",
    example_weighted: bool = False,
) -> metric_types.MetricComputations:
    key = metric_types.MetricKey(
        name=name, model_name=model_name, output_name=output_name, example_weighted=example_weighted
    )
    combiner = _LogLossCombiner(key, eval_config, model_name, output_name, example_weighted)
    return [metric_types.MetricComputation(keys=[key], preprocessors=None, combiner=combiner)]


class OutputCombiner(beam.CombineFn):
    """A combiner of one model output's (label, prediction, example weight) per example, for `key`."""

    def __init__(
        self,
        key: metric_types.MetricKey,
        eval_config: Optional[config_pb2.EvalConfig],
        model_name: str,
        output_name: str,
        example_weighted: bool = False,
    ):
        self._key = key
        self._eval_config = eval_config
        self._model_name = model_name
        self._output_name = output_name
        self._example_weighted = example_weighted

    def labelled(self, element: metric_types.StandardMetricInputs) -> Iterator[Tuple[float, float, float]]:
        """(label, prediction, example weight) of each of the element's outputs, as floats."""
        for label, prediction, weight in metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._model_name,
            output_name=self._output_name,
            example_weighted=self._example_weighted,
        ):
            yield float(label), float(prediction), float(weight)


class _LogLossCombiner(OutputCombiner):
    """Accumulates [sum of weighted losses, sum of weights]."""

    def create_accumulator(self) -> List[float]:
        return [0.0, 0.0]

    def add_input(self, totals: List[float], element: metric_types.StandardMetricInputs) -> List[float]:
        for label, prediction, weight in self.labelled(element):
            totals[0] += weight * video_scores.log_loss(prediction, label)
            totals[1] += weight
        return totals

    def merge_accumulators(self, accumulators: Iterable[List[float]]) -> List[float]:
        merged = self.create_accumulator()
        for loss, weight in accumulators:
            merged[0] += loss
            merged[1] += weight
        return merged

    def extract_output(self, totals: List[float]) -> dict:
        loss, weight = totals
        return {self._key: loss / weight if weight else float("nan")}
