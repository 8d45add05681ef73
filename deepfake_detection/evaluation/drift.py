"""Drift between what a model version was trained on and what it is asked now, feature by feature.

The pipeline's StatisticsGen summarises the training examples (TFDV); the
pushed version carries that summary in `assets.extra/`: TFDV's own
`training_statistics.pb`, for `deepfake-pipeline drift` (which compares
through TFDV), and `training_histograms.json`, the drift features' standard
histograms, for the detection service, which has no TensorFlow and computes
the same Jensen-Shannon divergence here (`jensen_shannon_divergence`, TFDV's
algorithm: both histograms re-bucketed on the union of their boundaries with
counts spread uniformly inside each bucket, point and infinite buckets kept
apart, log base 2, capped at 1). `DRIFT_THRESHOLDS` are this comparison's own
(uploads against a whole training split, docs/drift.md), not the pipeline's
span-to-span ones (schemas/drift_config.pbtxt), which compare two small spans.
"""

import json
import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from deepfake_detection import contract

# The drift features (the input's description, never its label), and the Jensen-Shannon divergence from which
# each counts as drifted: above what ~30 uploaded faces drawn like the training data reach (0.23 at most), far
# below what darker, smaller, more compressed ones do (0.74 at least; docs/drift.md).
DRIFT_THRESHOLDS: Mapping[str, float] = {
    contract.BRIGHTNESS_KEY: 0.3,
    contract.CONTRAST_KEY: 0.3,
    contract.SHARPNESS_KEY: 0.3,
    contract.BLOCKINESS_KEY: 0.3,
    contract.FACE_SIZE_KEY: 0.3,
    contract.FACE_CONFIDENCE_KEY: 0.3,
    contract.FRAME_WIDTH_KEY: 0.3,
    contract.FRAME_HEIGHT_KEY: 0.3,
}
FEATURES: Tuple[str, ...] = tuple(DRIFT_THRESHOLDS)
STATISTICS_DIR = "assets.extra"
TRAINING_STATISTICS_FILE = "training_statistics.pb"
TRAINING_HISTOGRAMS_FILE = "training_histograms.json"
# TFDV's standard histograms: this many equal-width buckets from the smallest value to the largest.
STANDARD_BUCKETS = 10

# A histogram: its buckets as (low, high, count), and how many values were NaN.
Bucket = Tuple[float, float, float]


class Histogram:
    def __init__(self, buckets: Sequence[Bucket], num_nan: float = 0.0):
        self.buckets = [(float(low), float(high), float(count)) for low, high, count in buckets]
        self.num_nan = float(num_nan)

    def to_dict(self) -> dict:
        return {"buckets": [list(bucket) for bucket in self.buckets], "num_nan": self.num_nan}

    @classmethod
    def from_dict(cls, document: Mapping) -> "Histogram":
        return cls([tuple(bucket) for bucket in document["buckets"]], document.get("num_nan", 0.0))


def standard_histogram(values: Sequence[float], buckets: int = STANDARD_BUCKETS) -> Histogram:
    """Equal-width buckets from the smallest value to the largest (the last one closed), like TFDV's standard
    histogram; one point bucket when every value is the same. NaNs are counted apart."""
    finite = [v for v in values if not math.isnan(v)]
    num_nan = len(values) - len(finite)
    if not finite:
        return Histogram([], num_nan)
    low, high = min(finite), max(finite)
    if low == high:
        return Histogram([(low, high, len(finite))], num_nan)
    width = (high - low) / buckets
    counts = [0] * buckets
    for value in finite:
        counts[min(int((value - low) / width), buckets - 1)] += 1
    return Histogram([(low + i * width, low + (i + 1) * width, counts[i]) for i in range(buckets)], num_nan)


def jensen_shannon_divergence(first: Histogram, second: Histogram) -> Optional[float]:
    """TFDV's Jensen-Shannon divergence of two histograms (0: the same, 1: disjoint); None when one is empty."""
    first_masses, second_masses = _aligned(first, second)
    first_total, second_total = sum(first_masses), sum(second_masses)
    if first_total == 0 or second_total == 0:
        return None
    p = [m / first_total for m in first_masses]
    q = [m / second_total for m in second_masses]
    middle = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return min((_kullback_leibler(p, middle) + _kullback_leibler(q, middle)) / 2, 1.0)


def _kullback_leibler(p: Sequence[float], q: Sequence[float]) -> float:
    return sum(a * math.log2(a / b) for a, b in zip(p, q, strict=True) if a > 0 and b > 0)


def _aligned(first: Histogram, second: Histogram) -> Tuple[List[float], List[float]]:
    """Both histograms' masses on the same buckets: the finite ranged buckets re-bucketed on the union of
    their boundaries, then each point value, then infinite and NaN masses, each only on its own side."""
    (first_ranged, first_points, first_infinite), (second_ranged, second_points, second_infinite) = (
        _split(first),
        _split(second),
    )
    boundaries = sorted({edge for low, high, _ in first_ranged + second_ranged for edge in (low, high)})
    first_masses = _rebucketed(first_ranged, boundaries) if boundaries else []
    second_masses = _rebucketed(second_ranged, boundaries) if boundaries else []
    for point in sorted(set(first_points) | set(second_points)):
        first_masses.append(first_points.get(point, 0.0))
        second_masses.append(second_points.get(point, 0.0))
    if first_infinite:
        first_masses.append(first_infinite)
        second_masses.append(0.0)
    if second_infinite:
        first_masses.append(0.0)
        second_masses.append(second_infinite)
    if first.num_nan or second.num_nan:
        first_masses += [0.0, first.num_nan]
        second_masses += [second.num_nan, 0.0]
    return first_masses, second_masses


def _split(histogram: Histogram) -> Tuple[List[Bucket], Dict[float, float], float]:
    """(finite ranged buckets, mass at each point bucket's value, mass in buckets with an infinite bound)."""
    ranged: List[Bucket] = []
    points: Dict[float, float] = {}
    infinite = 0.0
    for low, high, count in histogram.buckets:
        if not (math.isfinite(low) and math.isfinite(high)):
            infinite += count
        elif low == high:
            points[low] = points.get(low, 0.0) + count
        else:
            ranged.append((low, high, count))
    return ranged, points, infinite


def _rebucketed(buckets: Sequence[Bucket], boundaries: Sequence[float]) -> List[float]:
    """The mass of each interval between consecutive `boundaries`, each bucket's count spread uniformly over its
    range (every bucket edge is one of the boundaries, so intervals never straddle an edge)."""
    masses = [0.0] * (len(boundaries) - 1)
    for low, high, count in buckets:
        for i in range(len(masses)):
            start, end = boundaries[i], boundaries[i + 1]
            if start >= low and end <= high:
                masses[i] += count * (end - start) / (high - low)
    return masses


def histograms_of(statistics) -> Dict[str, Histogram]:  # noqa: ANN001 - a TFDV DatasetFeatureStatisticsList
    """The standard histogram of each drift feature in TFDV statistics (their first dataset)."""
    found = {}
    for feature in statistics.datasets[0].features:
        name = ".".join(feature.path.step) or feature.name
        if name not in DRIFT_THRESHOLDS or not feature.HasField("num_stats"):
            continue
        for histogram in feature.num_stats.histograms:
            if histogram.type == histogram.STANDARD:
                buckets = [(b.low_value, b.high_value, b.sample_count) for b in histogram.buckets]
                found[name] = Histogram(buckets, histogram.num_nan)
    return found


def read_training_histograms(version_folder: str) -> Optional[Dict[str, Histogram]]:
    """A pushed version's training histograms (`training_histograms.json`), None when it carries none."""
    path = os.path.join(version_folder, STATISTICS_DIR, TRAINING_HISTOGRAMS_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return {name: Histogram.from_dict(document) for name, document in json.load(f).items()}
