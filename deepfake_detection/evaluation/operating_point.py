"""The operating point: where a video score becomes `fake`, `uncertain` or `real`, fitted on held-out videos.

A detector that separates real from fake only moderately must not answer
"fake" at a hand-set 0.5: a false accusation is the costliest error a
service makes. The point is fitted after training, on videos the model never
trained on (the eval split), and travels inside the exported model so every
client applies the same point to the same version:

- calibration: Platt scaling of the video score's logit, so the probability a
  person reads means what it says (`calibrate`);
- `fake_threshold`: the calibrated probability at or above which a video is
  called fake, set so that at most `false_alarm_budget` of real videos are.
  With n real videos, a budget of b can be measured only once n >= 3 / b
  (the rule of three: with no false alarm among n, the 95 % bound is 3 / n).
  Below that the threshold is the larger of the highest real score and a
  one-sided tolerance bound of a logit-normal fit to the real scores (at
  most the budget of real videos above it, with 95 % confidence), and the fit
  says so (`FittedPoint.fake_method`). A few real videos are a few people,
  and people score apart more than a handful shows (docs/verdicts.md), so
  the fit's spread is at least the pooled spread of both classes around
  their own means;
- `real_threshold`: below it a video is called real, set so that at most
  `miss_budget` of fake videos are (the same two ways); between the two the
  verdict is `uncertain`.
"""

import dataclasses
import math
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

VERDICT_FAKE = "fake"
VERDICT_UNCERTAIN = "uncertain"
VERDICT_REAL = "real"
VERDICT_NO_FACE = "no_face"
# Something was detected, but nothing the person rule counts (`persons`): a wheel is not "no face".
VERDICT_NO_PERSON = "no_person"
VERDICTS = (VERDICT_FAKE, VERDICT_UNCERTAIN, VERDICT_REAL, VERDICT_NO_FACE, VERDICT_NO_PERSON)

# How the exported model carries the point: an output of `serving_default`, and a file in `assets.extra/`.
OUTPUT_KEY = "operating_point"
FILE_NAME = "operating_point.json"
NO_FACE_EXPLANATION = "No face was detected in the sampled frames, so nothing was scored."
DEFAULT_FALSE_ALARM_BUDGET = 0.01
DEFAULT_MISS_BUDGET = 0.1
METHOD_EMPIRICAL = "empirical"
METHOD_TOLERANCE_BOUND = "tolerance_bound"
METHOD_UNFITTED = "unfitted"
_EPSILON = 1e-6
_TOLERANCE_CONFIDENCE = 0.95


def logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, np.float64), _EPSILON, 1 - _EPSILON)
    return np.log(clipped / (1 - clipped))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


@dataclasses.dataclass(frozen=True)
class OperatingPoint:
    """Calibration of a raw video score and the two thresholds on the calibrated probability."""

    fake_threshold: float
    real_threshold: float
    calibration_slope: float = 1.0
    calibration_intercept: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_threshold <= self.fake_threshold <= 1.0:
            raise ValueError(
                f"Invalid operating point: expected 0 <= real_threshold ({self.real_threshold}) "
                f"<= fake_threshold ({self.fake_threshold}) <= 1"
            )

    def calibrate(self, raw_score: float) -> float:
        """The probability that a video with this raw score is fake, as measured on held-out videos."""
        return float(sigmoid(self.calibration_slope * logit(raw_score) + self.calibration_intercept))

    def verdict(self, probability: Optional[float]) -> str:
        """`fake`, `uncertain` or `real` for a calibrated probability; `no_face` for None."""
        if probability is None:
            return VERDICT_NO_FACE
        if probability >= self.fake_threshold:
            return VERDICT_FAKE
        if probability < self.real_threshold:
            return VERDICT_REAL
        return VERDICT_UNCERTAIN

    def to_dict(self) -> Dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, float]) -> "OperatingPoint":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: float(v) for k, v in values.items() if k in fields})

    def as_vector(self) -> np.ndarray:
        """[fake_threshold, real_threshold, slope, intercept]: how the exported model carries the point."""
        return np.array(
            [self.fake_threshold, self.real_threshold, self.calibration_slope, self.calibration_intercept], np.float32
        )

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> "OperatingPoint":
        fake, real, slope, intercept = (float(v) for v in values)
        return cls(fake, real, slope, intercept)


def explain(point: OperatingPoint, probability: Optional[float]) -> str:
    """One line that says why a video got its verdict, in the words a person reads."""
    verdict = point.verdict(probability)
    if verdict == VERDICT_NO_FACE:
        return NO_FACE_EXPLANATION
    shown = f"{probability:.0%}"
    fake, real = f"{point.fake_threshold:.0%}", f"{point.real_threshold:.0%}"
    if verdict == VERDICT_FAKE:
        return f"Substantial evidence of manipulation: {shown}, at or above the {fake} that few real videos reach."
    if verdict == VERDICT_REAL:
        return f"Little evidence of manipulation: {shown}, under the {real} that most fakes exceed."
    return (
        f"Uncertain: {shown} lies between {real} and {fake}, where real and manipulated videos both occur; "
        "this model cannot tell them apart here."
    )


def explain_no_person(rejected: Sequence[str]) -> str:
    """Why a file where the face detector fired, but never on a person, has no score; `rejected` holds each
    rejected track's reason."""
    return (
        f"The face detector fired on {len(rejected)} track(s), but none is a person "
        f"({'; '.join(rejected)}), so nothing was scored. The tracks are listed in other_tracks."
    )


def explain_thin(point: OperatingPoint, probability: float, thin: Sequence[str]) -> str:
    """Why a file whose score rests on thin evidence (`thin`: each thin person's reason) is `uncertain`."""
    reading = point.verdict(probability)
    return (
        f"Uncertain: the evidence is thin ({'; '.join(thin)}). On these faces the score is {probability:.0%}, which "
        f"alone would read {reading}; the operating point is fitted on faces seen in more frames and more surely, "
        "and a face the detector finds rarely or unsurely may be a manipulated one, so this file is neither "
        "called fake nor cleared."
    )


@dataclasses.dataclass(frozen=True)
class FittedPoint:
    """The point and how it was fitted: the method of each threshold, the counts and the budgets."""

    point: OperatingPoint
    fake_method: str
    real_method: str
    real_videos: int
    fake_videos: int
    false_alarm_budget: float
    miss_budget: float
    calibrated: bool

    def notes(self) -> str:
        """A plain sentence on what the fit could and could not measure."""
        needed = math.ceil(3 / self.false_alarm_budget) if self.false_alarm_budget > 0 else 0
        parts = []
        if self.fake_method == METHOD_EMPIRICAL:
            parts.append(f"the fake threshold is measured on {self.real_videos} real videos")
        elif self.fake_method == METHOD_TOLERANCE_BOUND:
            parts.append(
                f"{self.real_videos} real videos are too few to measure a {self.false_alarm_budget:.0%} false-alarm "
                f"budget (that takes {needed}); the fake threshold is the higher of the highest real score and a "
                f"bound that a fitted distribution of real scores (its spread at least both classes' pooled "
                f"spread) exceeds at most that often, with {_TOLERANCE_CONFIDENCE:.0%} confidence"
            )
        else:
            parts.append("no real video was held out: nothing is called fake")
        if self.real_method == METHOD_UNFITTED:
            parts.append("no fake video was held out: nothing is called real")
        if not self.calibrated:
            parts.append("the scores are not calibrated (one class held out, or no separation)")
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return {
            **self.point.to_dict(),
            "fake_method": self.fake_method,
            "real_method": self.real_method,
            "real_videos": self.real_videos,
            "fake_videos": self.fake_videos,
            "false_alarm_budget": self.false_alarm_budget,
            "miss_budget": self.miss_budget,
            "calibrated": self.calibrated,
            "notes": self.notes(),
        }


def platt(scores: Sequence[float], labels: Sequence[int], iterations: int = 50) -> Optional[tuple]:
    """(slope, intercept) of a logistic fit to the scores' logits, with Platt's smoothed targets.

    None when one class is missing or the fit finds no positive slope (the
    scores then carry no usable order).
    """
    z, y = logit(scores), np.asarray(labels, np.float64)
    positives, negatives = float(y.sum()), float((1 - y).sum())
    if positives == 0 or negatives == 0:
        return None
    targets = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    features = np.stack([z, np.ones_like(z)], axis=1)

    def loss(params: np.ndarray) -> float:
        margin = features @ params
        return float((np.logaddexp(0, margin) - targets * margin).sum())

    params = np.array([1.0, 0.0])
    for _ in range(iterations):
        p = sigmoid(features @ params)
        gradient = features.T @ (p - targets)
        hessian = features.T @ (features * np.maximum(p * (1 - p), 1e-12)[:, None]) + 1e-9 * np.eye(2)
        step, size, current = np.linalg.solve(hessian, gradient), 1.0, loss(params)
        while size > 1e-6 and loss(params - size * step) > current:
            size /= 2
        params = params - size * step
        if np.abs(size * step).max() < 1e-10:
            break
    slope, intercept = float(params[0]), float(params[1])
    if not np.isfinite([slope, intercept]).all() or slope <= 0:
        return None
    return float(slope), float(intercept)


def _upper_threshold(values: np.ndarray, budget: float, spread_floor: float = 0.0) -> tuple:
    """(threshold, method): at most `budget` of `values` lie at or above the threshold; a fitted bound uses a
    spread of at least `spread_floor` on the logit scale."""
    allowed = int(math.floor(budget * values.size + 1e-9))
    ordered = np.sort(values)[::-1]
    empirical = float(np.nextafter(ordered[allowed], np.inf)) if allowed < values.size else float(ordered[-1])
    if budget > 0 and values.size >= 3 / budget:
        return empirical, METHOD_EMPIRICAL
    bound = _tolerance_bound(logit(values), budget, spread_floor)
    return max(float(np.nextafter(ordered[0], np.inf)), float(sigmoid(bound))), METHOD_TOLERANCE_BOUND


def _tolerance_bound(z: np.ndarray, tail: float, spread_floor: float = 0.0) -> float:
    """A value that at most `tail` of a normal fitted to `z` exceeds, with 95 % confidence over the draw of `z`
    (the one-sided normal tolerance factor, from the noncentral t distribution)."""
    if z.size < 2:
        return float(z.max()) + 3.0
    n = z.size
    factor = stats.nct.ppf(_TOLERANCE_CONFIDENCE, n - 1, stats.norm.ppf(1 - max(tail, 1e-6)) * math.sqrt(n))
    return float(z.mean() + factor / math.sqrt(n) * max(z.std(ddof=1), spread_floor))


def pooled_spread(*groups: np.ndarray) -> float:
    """The pooled within-group standard deviation of the groups' logits; 0 with fewer than two in each."""
    groups = tuple(logit(g) for g in groups if g.size >= 2)
    if not groups:
        return 0.0
    squares = sum(float(((z - z.mean()) ** 2).sum()) for z in groups)
    return math.sqrt(squares / (sum(z.size for z in groups) - len(groups)))


def fit_operating_point(
    real_scores: Sequence[float],
    fake_scores: Sequence[float],
    false_alarm_budget: float = DEFAULT_FALSE_ALARM_BUDGET,
    miss_budget: float = DEFAULT_MISS_BUDGET,
) -> FittedPoint:
    """Calibration and both thresholds from the raw video scores of held-out real and fake videos."""
    if not (0 < false_alarm_budget < 1 and 0 <= miss_budget < 1):
        raise ValueError(
            f"Invalid budgets: false_alarm_budget={false_alarm_budget} must be in (0, 1) and "
            f"miss_budget={miss_budget} in [0, 1)"
        )
    reals, fakes = np.asarray(real_scores, np.float64), np.asarray(fake_scores, np.float64)
    fitted = platt(np.concatenate([reals, fakes]), np.r_[np.zeros(reals.size), np.ones(fakes.size)])
    slope, intercept = fitted or (1.0, 0.0)

    def calibrated(values: np.ndarray) -> np.ndarray:
        return sigmoid(slope * logit(values) + intercept)

    spread = pooled_spread(reals, fakes)
    if reals.size:
        raw_fake, fake_method = _upper_threshold(reals, false_alarm_budget, spread)
        fake_threshold = float(calibrated(np.array([raw_fake]))[0])
    else:
        fake_threshold, fake_method = 1.0, METHOD_UNFITTED
    if fakes.size:
        raw_real, real_method = _upper_threshold(1 - fakes, miss_budget, spread)
        real_threshold = min(fake_threshold, float(calibrated(np.array([1 - raw_real]))[0]))
    else:
        real_threshold, real_method = 0.0, METHOD_UNFITTED
    point = OperatingPoint(min(1.0, fake_threshold), max(0.0, real_threshold), slope, intercept)
    return FittedPoint(
        point,
        fake_method,
        real_method,
        int(reals.size),
        int(fakes.size),
        false_alarm_budget,
        miss_budget,
        fitted is not None,
    )


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple:
    """95 % Wilson score interval of a proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def expected_calibration_error(probabilities: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """Expected calibration error over equal-width bins: the mean gap between confidence and frequency."""
    p, y = np.asarray(probabilities, np.float64), np.asarray(labels, np.float64)
    if p.size == 0:
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    gaps = [abs(p[which == b].mean() - y[which == b].mean()) * (which == b).sum() for b in set(which.tolist())]
    return float(sum(gaps) / p.size)


def rates(point: OperatingPoint, raw_scores: Sequence[float], labels: Sequence[int]) -> dict:
    """What the point achieves on scored videos: fakes caught, reals accused, uncertain shares, with 95 % intervals,
    and the calibration error of the raw and the calibrated scores."""
    raw, y = np.asarray(raw_scores, np.float64), np.asarray(labels, int)
    calibrated = np.array([point.calibrate(s) for s in raw])
    verdicts = np.array([point.verdict(p) for p in calibrated])
    reals, fakes = y == 0, y == 1

    def share(mask: np.ndarray, verdict: str) -> dict:
        hits, total = int((verdicts[mask] == verdict).sum()), int(mask.sum())
        low, high = wilson_interval(hits, total)
        return {"count": hits, "of": total, "rate": hits / total if total else float("nan"), "ci95": [low, high]}

    return {
        "fakes_caught": share(fakes, VERDICT_FAKE),
        "reals_accused": share(reals, VERDICT_FAKE),
        "reals_cleared": share(reals, VERDICT_REAL),
        "fakes_uncertain": share(fakes, VERDICT_UNCERTAIN),
        "reals_uncertain": share(reals, VERDICT_UNCERTAIN),
        "uncertain": share(np.ones_like(reals), VERDICT_UNCERTAIN),
        "ece_raw": expected_calibration_error(raw, y),
        "ece_calibrated": expected_calibration_error(calibrated, y),
    }
