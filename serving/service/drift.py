"""Input drift as Prometheus gauges: the uploads' face statistics over a rolling window against the served
version's training statistics, computed without TensorFlow (`deepfake_detection.evaluation.drift`, TFDV's
Jensen-Shannon divergence on the same histograms).

    detection_input_drift{feature}            divergence of the window from the training data (0 to 1)
    detection_input_drift_threshold{feature}  from which a feature counts as drifted (the alert rule's line)
    detection_input_drift_faces               faces in the window

A version without training statistics (pushed before they were, or no
`--model-base-path`) exports no divergence. `deepfake-pipeline drift` makes
the same comparison through TFDV itself, over any period of the history.
"""

import collections
import threading
import time
from typing import Callable, Deque, Dict, Iterator, List, Optional, Tuple

from prometheus_client.core import GaugeMetricFamily

from deepfake_detection.evaluation.drift import (
    DRIFT_THRESHOLDS,
    FEATURES,
    Histogram,
    jensen_shannon_divergence,
    standard_histogram,
)

TrainingHistograms = Callable[[int], Optional[Dict[str, Histogram]]]
# The most faces the window holds, whatever its duration, so that its memory and the scrape's work are bounded.
MAX_WINDOW_FACES = 20_000


class DriftMonitor:
    """The faces analysed in the last `window_s` seconds, and their divergence from the training data of the
    model version that analysed the newest of them (a Prometheus collector)."""

    def __init__(self, training: TrainingHistograms, window_s: float, max_faces: int = MAX_WINDOW_FACES):
        self._training = training
        self._window_s = window_s
        self._faces: Deque[Tuple[float, int, Dict[str, float]]] = collections.deque(maxlen=max_faces)
        self._histograms: Dict[int, Optional[Dict[str, Histogram]]] = {}
        self._lock = threading.Lock()

    def observe(self, model_version: Optional[int], faces: List[Dict[str, float]], now: Optional[float] = None) -> None:
        if model_version is None:
            return
        moment = time.time() if now is None else now
        with self._lock:
            self._faces.extend((moment, model_version, face) for face in faces)

    def distances(self, now: Optional[float] = None) -> Dict[str, float]:
        """Each feature's divergence over the window; empty without faces or training histograms."""
        since = (time.time() if now is None else now) - self._window_s
        with self._lock:
            while self._faces and self._faces[0][0] < since:
                self._faces.popleft()
            faces = list(self._faces)
        if not faces:
            return {}
        version = faces[-1][1]
        training = self._training_histograms(version)
        if not training:
            return {}
        window = [face for _, face_version, face in faces if face_version == version]
        found = {}
        for feature in FEATURES:
            if feature in training:
                distance = jensen_shannon_divergence(
                    standard_histogram([f[feature] for f in window]), training[feature]
                )
                if distance is not None:
                    found[feature] = distance
        return found

    def _training_histograms(self, version: int) -> Optional[Dict[str, Histogram]]:
        if version not in self._histograms:
            self._histograms[version] = self._training(version)
        return self._histograms[version]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        distances = self.distances()
        drift = GaugeMetricFamily(
            "detection_input_drift",
            "Jensen-Shannon divergence of the uploads' faces (rolling window) from the served version's training data",
            labels=["feature"],
        )
        threshold = GaugeMetricFamily(
            "detection_input_drift_threshold", "Divergence from which a feature counts as drifted", labels=["feature"]
        )
        for feature, distance in distances.items():
            drift.add_metric([feature], distance)
            threshold.add_metric([feature], DRIFT_THRESHOLDS[feature])
        with self._lock:
            count = len(self._faces)
        yield drift
        yield threshold
        yield GaugeMetricFamily("detection_input_drift_faces", "Faces in the drift window", value=count)
