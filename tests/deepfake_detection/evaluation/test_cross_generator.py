"""Cross-generator evaluation: unseen kinds from training settings, AUCs on hand-built videos, the TFMA metric
in a Beam pipeline, the EvalConfig's bound and the report line."""

import json
import math

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that
from tensorflow_model_analysis.metrics import metric_types

from deepfake_detection import contract
from deepfake_detection.evaluation import cross_generator as cg
from deepfake_detection.evaluation import report, video_metrics
from deepfake_detection.evaluation.eval_config import BlessingConfig, build_eval_config
from deepfake_detection.models.data import FakeSource
from deepfake_detection.models.training import TrainingConfig

ALL = cg.EVERY_KIND_UNSEEN


def _video(label, score, manipulation, compression="c23"):
    return cg.VideoOutcome(label, score, manipulation, compression)


# Reals at c23 score 0.1 and 0.3, at c40 0.5; face_swap fakes (c23 0.9, c40 0.4), poisson_swap fakes (c23 0.2).
VIDEOS = [
    _video(0, 0.1, "original"),
    _video(0, 0.3, "original"),
    _video(0, 0.5, "original", "c40"),
    _video(1, 0.9, "face_swap"),
    _video(1, 0.4, "face_swap", "c40"),
    _video(1, 0.2, "poisson_swap"),
]


def _by_name(groups):
    return {name: value for group in groups for name, value in group.metrics().items()}


def test_metric_names_round_trip_and_foreign_names_are_not_parsed():
    assert cg.UNSEEN_AUC == "video_auc_unseen"
    name = cg.metric_name(cg.AUC, seen=True, feature=contract.MANIPULATION_KEY, value="face_swap")
    assert name == "video_auc_seen/manipulation=face_swap"
    assert cg.parse_metric_name(name) == cg.MetricName(cg.AUC, True, contract.MANIPULATION_KEY, "face_swap")
    assert (
        cg.metric_name(cg.REALS, feature=contract.COMPRESSION_KEY, value="c40") == "video_reals_unseen/compression=c40"
    )
    assert cg.parse_metric_name("video_auc_unseen") == cg.MetricName(cg.AUC, False)
    for foreign in ("video_auc", "video_count", "auc", "video_auc_unseen/dataset=dfdc", "video_auc_unseen/x"):
        assert cg.parse_metric_name(foreign) is None, foreign
    with pytest.raises(ValueError, match="dataset"):
        cg.metric_name(feature=contract.DATASET_KEY, value="dfdc")


@pytest.mark.parametrize(
    "fakes, expected",
    [
        (FakeSource(contract.FAKE_SOURCE_SELF_BLENDED), ALL),
        (FakeSource(contract.FAKE_SOURCE_SELF_BLENDED, ("face_swap",)), ALL),
        (FakeSource(contract.FAKE_SOURCE_DATASET), ()),
        (FakeSource(contract.FAKE_SOURCE_BOTH, ("b", "a", "b")), ("a", "b")),
    ],
)
def test_unseen_kinds_follow_the_fake_source(fakes, expected):
    assert cg.unseen_manipulations(fakes) == expected


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"fake_source": "gan"}, "fake source 'gan'"),
        ({"fake_source": "dataset", "held_out_manipulations": "face_swap"}, "held_out_manipulations='face_swap'"),
        ({"fake_source": "dataset", "held_out_manipulations": ["original"]}, "not manipulation kinds"),
    ],
)
def test_bad_training_settings_are_refused_by_name(settings, match):
    with pytest.raises(ValueError, match=match):
        TrainingConfig.from_custom_config({"backbone": "meso4", **settings})


def test_an_ensemble_has_not_seen_only_what_none_of_its_members_saw():
    assert cg.common_unseen([ALL, ALL]) == ALL
    assert cg.common_unseen([ALL, ("b", "a")]) == ("a", "b")
    assert cg.common_unseen([("a", "b"), ("b", "c"), ALL]) == ("b",)
    assert cg.common_unseen([("a",), ()]) == ()


def test_every_kind_unseen_compares_all_fakes_per_kind_and_per_compression_level():
    values = _by_name(cg.cross_generator_aucs(VIDEOS, ALL))
    # 3 fakes x 3 reals: 0.9 beats all 3; 0.4 beats 2; 0.2 beats 1.
    assert values["video_auc_unseen"] == pytest.approx(6 / 9)
    assert (values["video_fakes_unseen"], values["video_reals_unseen"]) == (3, 3)
    assert values["video_auc_unseen/manipulation=face_swap"] == pytest.approx(5 / 6)
    assert values["video_auc_unseen/manipulation=poisson_swap"] == pytest.approx(1 / 3)
    # c23: fakes 0.9, 0.2 vs reals 0.1, 0.3 -> 3 of 4; c40: fake 0.4 vs real 0.5 -> 0.
    assert values["video_auc_unseen/compression=c23"] == pytest.approx(3 / 4)
    assert values["video_auc_unseen/compression=c40"] == 0.0
    assert (values["video_fakes_unseen/compression=c40"], values["video_reals_unseen/compression=c40"]) == (1, 1)
    assert not any(name.startswith("video_auc_seen") for name in values)


def test_held_out_kinds_are_unseen_and_the_others_flagged_seen():
    values = _by_name(cg.cross_generator_aucs(VIDEOS, ("poisson_swap", "not_in_split")))
    assert values["video_auc_unseen"] == pytest.approx(1 / 3)
    assert values["video_auc_seen/manipulation=face_swap"] == pytest.approx(5 / 6)
    assert values["video_auc_unseen/manipulation=poisson_swap"] == pytest.approx(1 / 3)
    assert "video_auc_unseen/manipulation=face_swap" not in values
    # Only poisson_swap (c23) is unseen: c40 has a real but no unseen fake, so its AUC is undefined, not 0.
    assert values["video_auc_unseen/compression=c23"] == pytest.approx(1 / 2)
    assert math.isnan(values["video_auc_unseen/compression=c40"])
    assert values["video_fakes_unseen/compression=c40"] == 0


def test_auc_without_unseen_fakes_or_without_reals_is_nan_never_zero():
    trained_on_all = _by_name(cg.cross_generator_aucs(VIDEOS, ()))
    assert math.isnan(trained_on_all["video_auc_unseen"]) and trained_on_all["video_fakes_unseen"] == 0
    assert trained_on_all["video_auc_seen/manipulation=face_swap"] == pytest.approx(5 / 6)
    fakes_only = _by_name(cg.cross_generator_aucs([v for v in VIDEOS if v.label == 1], ALL))
    assert math.isnan(fakes_only["video_auc_unseen"]) and fakes_only["video_reals_unseen"] == 0
    assert math.isnan(fakes_only["video_auc_unseen/manipulation=face_swap"])
    assert math.isnan(_by_name(cg.cross_generator_aucs([], ALL))["video_auc_unseen"])


def test_videos_without_a_score_are_left_out():
    values = _by_name(cg.cross_generator_aucs([*VIDEOS, _video(1, None, "face_swap")], ALL))
    assert values["video_fakes_unseen"] == 3 and values["video_auc_unseen"] == pytest.approx(6 / 9)


def _inputs(video_id, track, label, score, manipulation, compression):
    def feature(value):
        return np.array([value if isinstance(value, int) else value.encode()], dtype=object)

    return metric_types.StandardMetricInputs(
        labels=np.array([float(label)]),
        predictions=np.array([score]),
        example_weights=np.array([1.0]),
        features={
            contract.VIDEO_ID_KEY: feature(video_id),
            contract.TRACK_ID_KEY: np.array([track]),
            contract.MANIPULATION_KEY: feature(manipulation),
            contract.COMPRESSION_KEY: feature(compression),
        },
    )


def test_tfma_metric_scores_each_video_by_its_most_fake_track_in_a_beam_pipeline():
    metric = video_metrics.CrossGeneratorVideoMetric(unseen_manipulations=["poisson_swap"])
    [computation] = metric.computations()
    faces = [
        # A real video whose second person looks fake (mean 0.7): the video scores 0.7.
        _inputs("r1", 0, 0, 0.1, "original", "c23"),
        _inputs("r1", 1, 0, 0.6, "original", "c23"),
        _inputs("r1", 1, 0, 0.8, "original", "c23"),
        _inputs("r2", 0, 0, 0.2, "original", "c40"),
        # Unseen fakes: 0.75 beats both reals, 0.5 beats one; the seen face_swap fake 0.9 beats both.
        _inputs("p1", 0, 1, 0.75, "poisson_swap", "c23"),
        _inputs("p2", 0, 1, 0.5, "poisson_swap", "c40"),
        _inputs("f1", 0, 1, 0.9, "face_swap", "c23"),
    ]

    def check(outputs):
        [values] = outputs
        by_name = {key.name: value for key, value in values.items()}
        assert by_name["video_auc_unseen"] == pytest.approx(3 / 4)
        assert by_name["video_auc_seen/manipulation=face_swap"] == 1.0
        assert by_name["video_auc_unseen/manipulation=poisson_swap"] == pytest.approx(3 / 4)
        assert by_name["video_auc_unseen/compression=c23"] == 1.0
        assert by_name["video_auc_unseen/compression=c40"] == 1.0
        assert by_name["video_reals_unseen"] == 2 and by_name["video_fakes_unseen"] == 2

    with beam.Pipeline() as pipeline:
        result = pipeline | beam.Create(faces, reshuffle=False) | beam.CombineGlobally(computation.combiner)
        assert_that(result, check)


def _cross_generator_config(eval_config):
    [spec] = eval_config.metrics_specs
    return [m for m in spec.metrics if m.class_name == video_metrics.CrossGeneratorVideoMetric.__name__]


@pytest.mark.parametrize("temporal", [False, True])
def test_eval_config_carries_the_metric_and_the_unseen_bound_on_the_overall_slice(temporal):
    blessing = BlessingConfig(min_unseen_video_auc=0.6, video_rule="confident")
    [metric] = _cross_generator_config(build_eval_config(blessing, temporal, unseen_manipulations=("face_swap",)))
    assert json.loads(metric.config) == {"unseen_manipulations": ["face_swap"], "rule": "confident"}
    [bound] = metric.per_slice_thresholds
    assert bound.threshold.value_threshold.lower_bound.value == 0.6
    assert [list(s.feature_keys) for s in bound.slicing_specs] == [[]]
    [unbounded] = _cross_generator_config(build_eval_config(BlessingConfig(), temporal))
    assert json.loads(unbounded.config)["unseen_manipulations"] == list(ALL)
    assert not unbounded.per_slice_thresholds


def test_unseen_bound_is_refused_for_a_model_that_saw_every_kind_or_out_of_range():
    with pytest.raises(ValueError, match="min_unseen_video_auc=0.6"):
        build_eval_config(BlessingConfig(min_unseen_video_auc=0.6), unseen_manipulations=())
    with pytest.raises(ValueError, match="min_unseen_video_auc=1.5"):
        BlessingConfig(min_unseen_video_auc=1.5)


def test_report_line_shows_overall_per_kind_and_per_level_and_says_why_undefined():
    values = {"auc": 0.9, **_by_name(cg.cross_generator_aucs(VIDEOS, ("poisson_swap", "face_swap")))}
    assert report.format_cross_generator(values) == (
        "unseen video AUC 0.667 | face_swap 0.83 poisson_swap 0.33 | c23 0.75 c40 0.00"
    )
    held_out = _by_name(cg.cross_generator_aucs(VIDEOS, ("poisson_swap",)))
    assert report.format_cross_generator(held_out) == (
        "unseen video AUC 0.333 | face_swap (seen) 0.83 poisson_swap 0.33 | "
        "c23 0.50 c40 undefined (no unseen fake videos at c40)"
    )
    no_reals = _by_name(cg.cross_generator_aucs([v for v in VIDEOS if v.label == 1], ()))
    assert report.format_cross_generator(no_reals) == (
        "unseen video AUC undefined (no unseen fake videos and no real videos) | "
        "face_swap (seen) undefined (no real videos) poisson_swap (seen) undefined (no real videos)"
    )
    assert report.format_cross_generator({"auc": 0.9, "video_auc": 0.8}) == ""


def _paired(label, score, manipulation, source):
    return cg.VideoOutcome(label, score, manipulation, "c23", source)


def test_paired_rates_compare_each_fake_with_its_own_original_only():
    # Real "a" scores 0.8 and real "b" 0.1: the fake of "a" (0.6) loses to every real but "b" in an AUC,
    # yet it is compared with "a" alone here, and the fake of "b" (0.2) beats its own original.
    videos = [
        _paired(0, 0.8, "original", "a"),
        _paired(0, 0.1, "original", "b"),
        _paired(1, 0.6, "face_swap", "a"),
        _paired(1, 0.2, "face_swap", "b"),
        _paired(1, 0.1, "self_warp", "b"),
    ]
    rates = {rate.manipulation: (rate.rate, rate.pairs) for rate in cg.paired_rates(videos)}
    assert rates == {None: (0.5, 3), "face_swap": (0.5, 2), "self_warp": (0.5, 1)}
    assert cg.paired_rates(videos)[0].manipulation is None


def test_paired_rates_leave_out_fakes_without_a_scored_original():
    videos = [
        _paired(0, None, "original", "a"),
        _paired(0, 0.3, "original", "b"),
        _paired(1, 0.9, "face_swap", "a"),
        _paired(1, 0.9, "face_swap", "unknown"),
        _paired(1, 0.5, "partial_face", "b"),
    ]
    rates = cg.paired_rates(videos)
    assert [(r.manipulation, r.rate, r.pairs) for r in rates] == [(None, 1.0, 1), ("partial_face", 1.0, 1)]
    assert math.isnan(cg.paired_rates(videos[:1])[0].rate)
