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
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from deepfake_detection import contract
from deepfake_detection.evaluation import video_scores
from deepfake_detection.models.data import FakeSource

# The unseen kinds of a model trained without dataset fakes: every kind.
EVERY_KIND_UNSEEN: Tuple[str, ...] = (contract.ALL_MANIPULATIONS,)

AUC = "auc"
FAKES = "fakes"
REALS = "reals"
STATISTICS = (AUC, FAKES, REALS)
GROUP_FEATURES = (contract.MANIPULATION_KEY, contract.COMPRESSION_KEY)
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


def unseen_manipulations(fakes: FakeSource) -> Tuple[str, ...]:
    """The manipulation kinds a model trained on these fakes never saw.

    Self-blended fakes only: every kind (`EVERY_KIND_UNSEEN`); dataset fakes,
    with or without self-blended ones: the held-out kinds, possibly none.
    """
    if not fakes.dataset_fakes:
        return EVERY_KIND_UNSEEN
    return tuple(sorted(set(fakes.held_out)))


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
    """One video's label, its score (a rule of `video_scores`) and where it came from.

    `source` is the ingest's `source_id`: a fake's original, a real video's
    own id ("" when unknown), so a fake can be paired with its original.
    """

    label: int
    score: Optional[float]
    manipulation: str
    compression: str
    source: str = ""


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
    reals = [v for v in scored if v.label == contract.REAL_LABEL]
    fakes = [v for v in scored if v.label != contract.REAL_LABEL]
    unseen_fakes = [v for v in fakes if is_unseen(v.manipulation, unseen)]
    groups = [_group(unseen_fakes, reals, seen=False)]
    for kind in sorted({v.manipulation for v in fakes}):
        kind_fakes = [v for v in fakes if v.manipulation == kind]
        groups.append(_group(kind_fakes, reals, not is_unseen(kind, unseen), contract.MANIPULATION_KEY, kind))
    for level in sorted({v.compression for v in unseen_fakes + reals}):
        groups.append(
            _group(
                [v for v in unseen_fakes if v.compression == level],
                [v for v in reals if v.compression == level],
                False,
                contract.COMPRESSION_KEY,
                level,
            )
        )
    return groups


@dataclasses.dataclass(frozen=True)
class PairedRate:
    """The share of fakes scored above their own original; `manipulation` None stands for every kind."""

    manipulation: Optional[str]
    rate: float
    pairs: int


def paired_rates(videos: Iterable[VideoOutcome]) -> List[PairedRate]:
    """Fakes scored above the real video they were made from (a tie counts half): overall, then per kind.

    An AUC ranks every fake against every real, across people and scenes; a
    fake against its own original differs only in the manipulation. A model
    that wins most pairs but has a low AUC sees the manipulation and scores
    people unevenly; one that loses the pairs does not see it. Fakes whose
    original has no score are left out; a group without pairs has rate NaN.
    """
    scored = [v for v in videos if v.score is not None]
    originals = {v.source: v.score for v in scored if v.label == contract.REAL_LABEL and v.source}
    wins: Dict[str, List[float]] = {}
    for fake in (v for v in scored if v.label != contract.REAL_LABEL and v.source in originals):
        margin = fake.score - originals[fake.source]
        wins.setdefault(fake.manipulation, []).append(1.0 if margin > 0 else 0.5 if margin == 0 else 0.0)
    every = [win for kind_wins in wins.values() for win in kind_wins]
    groups = [(None, every)] + sorted(wins.items())
    return [PairedRate(kind, float(np.mean(w)) if w else math.nan, len(w)) for kind, w in groups]


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
