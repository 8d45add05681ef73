"""Frame sampling: planned indices, one-pass reading lands on the right frames, rescale rule."""

import os

import cv2
import pytest

from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.sampling import (
    VideoError,
    detection_scale,
    plan_frame_indices,
    read_planned_frames,
    sample_frames,
)
from tests.helpers import frame_number, write_numbered_video


def test_uniform_spreads_frames_over_the_whole_video():
    indices = plan_frame_indices("uniform", 32, 300, 30.0)
    assert len(indices) == 32
    assert indices[0] == 0 and indices[-1] == 299
    gaps = {b - a for a, b in zip(indices, indices[1:], strict=False)}
    assert gaps <= {9, 10}


def test_uniform_never_asks_for_more_frames_than_exist():
    assert plan_frame_indices("uniform", 32, 5, 30.0) == [0, 1, 2, 3, 4]
    assert plan_frame_indices("uniform", 32, 0, 30.0) == []


def test_per_second_keeps_frames_where_index_mod_floor_fps_is_zero():
    assert plan_frame_indices("per_second", 32, 100, 29.97) == list(range(0, 100, 29))
    assert plan_frame_indices("per_second", 32, 10, 0.0) == list(range(10))


@pytest.mark.parametrize(
    "width, scale", [(200, 2.0), (299, 2.0), (300, 1.0), (999, 1.0), (1000, 0.5), (1900, 0.5), (1920, 0.33)]
)
def test_detection_scale_follows_the_width_rule(width, scale):
    assert detection_scale(width) == scale


def test_one_pass_reading_returns_exactly_the_planned_frames(tmp_path):
    path = str(tmp_path / "numbered.avi")
    write_numbered_video(path, frames=40, fourcc="MJPG")
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    decoded, frames = read_planned_frames(capture, [0, 7, 13, 39], fps=10.0)
    capture.release()
    assert decoded == 40
    assert [f.index for f in frames] == [0, 7, 13, 39]
    assert [frame_number(f.image) for f in frames] == [0, 7, 13, 39]
    assert [f.timestamp for f in frames] == [0.0, 0.7, 1.3, 3.9]


def test_reading_stops_after_the_last_planned_frame(tmp_path):
    path = str(tmp_path / "numbered.avi")
    write_numbered_video(path, frames=40, fourcc="MJPG")
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    decoded, _ = read_planned_frames(capture, [2, 5], fps=10.0)
    capture.release()
    assert decoded == 6


def test_sample_frames_uses_the_configured_mode(tmp_path):
    path = str(tmp_path / "numbered.avi")
    write_numbered_video(path, frames=35, fps=10, fourcc="MJPG")
    info, frames = sample_frames(path, IngestConfig(sampling="per_second"))
    assert (info.width, info.height, info.fps) == (64, 48, 10.0)
    assert [frame_number(f.image) for f in frames] == [0, 10, 20, 30]
    _, frames = sample_frames(path, IngestConfig(frames_per_video=3))
    assert [f.index for f in frames] == [0, 17, 34]


def test_half_decodable_video_is_reported_truncated(tmp_path):
    path = str(tmp_path / "cut.avi")
    write_numbered_video(path, frames=40, fourcc="MJPG")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(VideoError) as error:
        sample_frames(path, IngestConfig())
    assert error.value.status == "unreadable"
    assert "truncated" in error.value.reason


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        sample_frames(os.path.join(tmp_path, "nope.mp4"), IngestConfig())
