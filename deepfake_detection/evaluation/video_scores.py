"""From face scores to one video score, and the metrics computed on such scores.

Shared by the evaluator (video-level metrics), the video client and the
detection service, so a video is scored the same way everywhere. Rules, from
the strongest public DFDC detectors (REFERENCE §3):

- `mean`: the plain mean of the face scores;
- `confident`: the DFDC winner's rule: when more than 40 % of the scores are
  above 0.8, the mean of those; else when over 90 % are below 0.2, the mean of
  those; else the plain mean;
- `confidence_weighted`: the third-place rule: each score is sharpened away
  from 0.5 and the sharpened scores are averaged with weights |p - 0.5|.

A video holds one track per person; it is as fake as its most fake person.
A video without faces has no score (None), never 0.5.
"""

from typing import Callable, Dict, Hashable, Mapping, Optional, Sequence

import numpy as np

RULE_MEAN = "mean"
RULE_CONFIDENT = "confident"
RULE_CONFIDENCE_WEIGHTED = "confidence_weighted"

_CONFIDENT_HIGH = 0.8
_CONFIDENT_LOW = 0.2
_CONFIDENT_HIGH_SHARE = 0.4
_CONFIDENT_LOW_SHARE = 0.9
_SHARPENING = 2.0
_EPSILON = 1e-7


def _mean(scores: np.ndarray) -> float:
    return float(scores.mean())


def _confident(scores: np.ndarray) -> float:
    high = scores[scores > _CONFIDENT_HIGH]
    if high.size > _CONFIDENT_HIGH_SHARE * scores.size:
        return float(high.mean())
    low = scores[scores < _CONFIDENT_LOW]
    if low.size > _CONFIDENT_LOW_SHARE * scores.size:
        return float(low.mean())
    return float(scores.mean())


def _confidence_weighted(scores: np.ndarray) -> float:
    clipped = np.clip(scores, _EPSILON, 1 - _EPSILON)
    sharpened = 1 / (1 + np.exp(-_SHARPENING * np.log(clipped / (1 - clipped))))
    weights = np.abs(scores - 0.5)
    if weights.sum() == 0:
        return float(scores.mean())
    return float((weights * sharpened).sum() / weights.sum())


RULES: Dict[str, Callable[[np.ndarray], float]] = {
    RULE_MEAN: _mean,
    RULE_CONFIDENT: _confident,
    RULE_CONFIDENCE_WEIGHTED: _confidence_weighted,
}


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"Unknown video aggregation rule {rule!r}; expected one of {sorted(RULES)}")
    return rule


def aggregate(scores: Sequence[float], rule: str = RULE_MEAN) -> Optional[float]:
    """One score from the face scores of one person (track); None when there are none."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        return None
    return RULES[check_rule(rule)](values)


def video_score(scores_by_track: Mapping[Hashable, Sequence[float]], rule: str = RULE_MEAN) -> Optional[float]:
    """The score of the most fake person in the video; None when no face was scored."""
    track_scores = [aggregate(scores, rule) for scores in scores_by_track.values()]
    track_scores = [s for s in track_scores if s is not None]
    return max(track_scores) if track_scores else None


def log_loss(probabilities: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(np.asarray(probabilities, np.float64), _EPSILON, 1 - _EPSILON)
    y = np.asarray(labels, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when only one class is present."""
    y = np.asarray(labels, bool)
    s = np.asarray(scores, np.float64)
    positives, negatives = s[y], s[~y]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (positives.size * negatives.size))
