"""Cross-generator evaluation: how a detector does on manipulation kinds it never trained on.

A model trained on self-blended pseudo-fakes sees no dataset manipulation, so
every fake kind of the test split is unseen; one trained on the dataset's
fakes sees all kinds but those held out. The video AUC of unseen fakes against
the real videos is the number the literature reports for generalisation; per
kind and per compression level it shows where the model breaks.

Pure functions on video scores, shared by the TFMA metric, the EvalConfig and
the report. An AUC without fakes or without reals is undefined: NaN, with the
counts kept beside it so the report can say why.
"""

import dataclasses
import math
from typing import Any, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from deepfake_detection import config
from deepfake_detection.evaluation import video_scores

# TrainingConfig's settings that decide what a model saw in training, and their defaults.
FAKE_SOURCE_SETTING = "fake_source"
HELD_OUT_SETTING = "held_out_manipulations"
# An unseen-kinds tuple holding only this stands for every fake kind (a model trained without dataset fakes).
ALL_MANIPULATIONS = "*"
EVERY_KIND_UNSEEN: Tuple[str, ...] = (ALL_MANIPULATIONS,)

AUC = "auc"
FAKES = "fakes"
REALS = "reals"
STATISTICS = (AUC, FAKES, REALS)
GROUP_FEATURES = (config.MANIPULATION_KEY, config.COMPRESSION_KEY)
_PREFIX = "video"
_SEEN, _UNSEEN = "seen", "unseen"


class MetricName(NamedTuple):
    """A parsed cross-generator metric name; `feature` and `value` are None for the overall one."""

    statistic: str
    seen: bool
    feature: Optional[str] = None
    value: Optional[str] = None


def metric_name(
    statistic: str = AUC, seen: bool = False, feature: Optional[str] = None, value: Optional[str] = None
) -> str:
    """The one naming rule: `video_<statistic>_<seen|unseen>[/<feature>=<value>]`.

    `video_auc_unseen` is the overall unseen-fakes AUC a blessing bound names;
    `video_auc_unseen/manipulation=face_swap`, `video_auc_seen/manipulation=face_swap`
    and `video_auc_unseen/compression=c40` are the groups; `video_fakes_*` and
    `video_reals_*` count the videos each AUC compared.
    """
    if statistic not in STATISTICS:
        raise ValueError(f"Unknown cross-generator statistic {statistic!r}; expected one of {list(STATISTICS)}")
    name = f"{_PREFIX}_{statistic}_{_SEEN if seen else _UNSEEN}"
    if feature is None:
        return name
    if feature not in GROUP_FEATURES:
        raise ValueError(f"Unknown cross-generator group {feature!r}; expected one of {list(GROUP_FEATURES)}")
    return f"{name}/{feature}={value}"


UNSEEN_AUC = metric_name()


def parse_metric_name(name: str) -> Optional[MetricName]:
    """The parts of a name `metric_name` made; None for any other metric."""
    head, slash, group = name.partition("/")
    parts = head.split("_")
    if len(parts) != 3 or parts[0] != _PREFIX or parts[1] not in STATISTICS or parts[2] not in (_SEEN, _UNSEEN):
        return None
    if not slash:
        return MetricName(parts[1], parts[2] == _SEEN)
    feature, equals, value = group.partition("=")
    if feature not in GROUP_FEATURES or not equals:
        return None
    return MetricName(parts[1], parts[2] == _SEEN, feature, value)


def unseen_manipulations(settings: Mapping[str, Any]) -> Tuple[str, ...]:
    """The manipulation kinds a model with these training settings never trained on.

    Self-blended fakes only: every kind (`EVERY_KIND_UNSEEN`); dataset fakes,
    with or without self-blended ones: the held-out kinds, possibly none.
    """
    fake_source = settings.get(FAKE_SOURCE_SETTING, config.DEFAULT_FAKE_SOURCE)
    if fake_source not in config.FAKE_SOURCES:
        raise ValueError(
            f"Invalid training setting {FAKE_SOURCE_SETTING}={fake_source!r}: "
            f"expected one of {list(config.FAKE_SOURCES)}"
        )
    held_out = settings.get(HELD_OUT_SETTING, ())
    if isinstance(held_out, (str, bytes)) or not all(isinstance(kind, str) and kind for kind in held_out):
        raise ValueError(
            f"Invalid training setting {HELD_OUT_SETTING}={held_out!r}: expected a list of manipulation kinds"
        )
    if config.ORIGINAL_MANIPULATION in held_out or ALL_MANIPULATIONS in held_out:
        raise ValueError(
            f"Invalid training setting {HELD_OUT_SETTING}={held_out!r}: "
            f"{config.ORIGINAL_MANIPULATION!r} and {ALL_MANIPULATIONS!r} are not manipulation kinds"
        )
    if fake_source == config.FAKE_SOURCE_SELF_BLENDED:
        return EVERY_KIND_UNSEEN
    return tuple(sorted(set(held_out)))


def common_unseen(members: Iterable[Sequence[str]]) -> Tuple[str, ...]:
    """The kinds none of the members trained on (an ensemble's unseen kinds)."""
    common: Optional[set] = None
    for unseen in members:
        if tuple(unseen) == EVERY_KIND_UNSEEN:
            continue
        common = set(unseen) if common is None else common & set(unseen)
    return EVERY_KIND_UNSEEN if common is None else tuple(sorted(common))


def is_unseen(manipulation: str, unseen: Sequence[str]) -> bool:
    return tuple(unseen) == EVERY_KIND_UNSEEN or manipulation in unseen


@dataclasses.dataclass(frozen=True)
class VideoOutcome:
    """One video's label, its score (a rule of `video_scores`) and where it came from."""

    label: int
    score: Optional[float]
    manipulation: str
    compression: str


@dataclasses.dataclass(frozen=True)
class GroupAuc:
    """The AUC of one group of fake videos against the matching real videos, with both counts."""

    seen: bool
    feature: Optional[str]
    value: Optional[str]
    auc: float
    fakes: int
    reals: int

    def metrics(self) -> Dict[str, float]:
        """{metric name: value} of the AUC and the two counts."""
        values = {AUC: self.auc, FAKES: float(self.fakes), REALS: float(self.reals)}
        return {metric_name(s, self.seen, self.feature, self.value): v for s, v in values.items()}


def _group(
    fakes: Sequence[VideoOutcome],
    reals: Sequence[VideoOutcome],
    seen: bool,
    feature: Optional[str] = None,
    value: Optional[str] = None,
) -> GroupAuc:
    labels = np.array([1] * len(fakes) + [0] * len(reals))
    scores = np.array([v.score for v in [*fakes, *reals]], np.float64)
    return GroupAuc(seen, feature, value, video_scores.roc_auc(labels, scores), len(fakes), len(reals))


def cross_generator_aucs(videos: Iterable[VideoOutcome], unseen: Sequence[str]) -> List[GroupAuc]:
    """Unseen fakes vs all reals; each fake kind vs all reals; per compression level, unseen fakes vs its reals.

    Videos without a score (no face) are left out. Kinds and levels are those
    present in `videos`, in sorted order.
    """
    scored = [v for v in videos if v.score is not None]
    reals = [v for v in scored if v.label == config.REAL_LABEL]
    fakes = [v for v in scored if v.label != config.REAL_LABEL]
    unseen_fakes = [v for v in fakes if is_unseen(v.manipulation, unseen)]
    groups = [_group(unseen_fakes, reals, seen=False)]
    for kind in sorted({v.manipulation for v in fakes}):
        kind_fakes = [v for v in fakes if v.manipulation == kind]
        groups.append(_group(kind_fakes, reals, not is_unseen(kind, unseen), config.MANIPULATION_KEY, kind))
    for level in sorted({v.compression for v in unseen_fakes + reals}):
        groups.append(
            _group(
                [v for v in unseen_fakes if v.compression == level],
                [v for v in reals if v.compression == level],
                False,
                config.COMPRESSION_KEY,
                level,
            )
        )
    return groups


def undefined_reason(fakes: int, reals: int, seen: bool = False, compression: Optional[str] = None) -> str:
    """Why a group's AUC is undefined, from its counts."""
    where = f" at {compression}" if compression is not None else ""
    missing = []
    if fakes == 0:
        missing.append(f"no {'' if seen else 'unseen '}fake videos{where}")
    if reals == 0:
        missing.append(f"no real videos{where}")
    return " and ".join(missing) or "undefined"


def is_undefined(value: Optional[float]) -> bool:
    return value is None or math.isnan(value)
