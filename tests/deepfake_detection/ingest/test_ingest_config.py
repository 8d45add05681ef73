"""Ingest settings are validated where they enter, with messages naming the setting."""

import pytest

from deepfake_detection.ingest.ingest_config import IngestConfig, parse_split_buckets


def test_json_round_trip_keeps_every_setting():
    original = IngestConfig(sampling="per_second", image_size=128, split_buckets={"train": 1, "eval": 1})
    assert IngestConfig.from_json(original.to_json()) == original


@pytest.mark.parametrize(
    "settings, named",
    [
        ({"sampling": "random"}, "sampling"),
        ({"frames_per_video": 0}, "frames_per_video"),
        ({"image_format": "gif"}, "image_format"),
        ({"margin": 2.0}, "margin"),
        ({"min_person_confidence": 1.5}, "min_person_confidence"),
        ({"min_person_frame_share": -0.1}, "min_person_frame_share"),
        ({"split_buckets": {"validation": 1}}, "split_buckets"),
        ({"split_buckets": {"train": 0}}, "split_buckets"),
    ],
)
def test_bad_settings_are_named(settings, named):
    with pytest.raises(ValueError, match=f"Invalid ingest setting {named}="):
        IngestConfig(**settings)


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="Unknown ingest setting"):
        IngestConfig.from_dict({"frames": 3})


def test_split_buckets_from_the_command_line():
    assert parse_split_buckets("train:8,eval:1,test:1") == {"train": 8, "eval": 1, "test": 1}
    with pytest.raises(ValueError, match="NAME:COUNT"):
        parse_split_buckets("train=8")
