"""Every face is judged: the verdict of a file from detector outputs of each case the person rule meets.

A split track, a face seen rarely, a swapped face the detector is unsure of
and a texture taken for a face, through the service's analyser and the
command line's table (the ingest's report: tests/deepfake_detection/ingest/test_videos.py).
"""

import numpy as np
import pytest

from deepfake_detection.evaluation.operating_point import OperatingPoint
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.sampling import SampledFrame
from serving.client import detect as cli
from serving.client.tf_serving import Prediction
from serving.service.video_analysis import VERDICT_NO_FACE, VERDICT_NO_PERSON, VideoAnalyzer
from tests.helpers import DetectorOutputs, face_detection

FRAMES = 32
CONFIG = IngestConfig(frames_per_video=FRAMES, image_size=32)
POINT = OperatingPoint(fake_threshold=0.9, real_threshold=0.2)


class _Scores:
    """A face model that gives every face the same score, with the operating point POINT."""

    def __init__(self, score):
        self.score = score

    def predict(self, images):
        return Prediction(np.full(len(images), self.score), 3, POINT)


def _frames(count=FRAMES):
    return [SampledFrame(i, i / 10, np.full((240, 320, 3), 100, np.uint8)) for i in range(count)]


def _analyse(by_frame, score):
    return VideoAnalyzer(_Scores(score), CONFIG, detector=DetectorOutputs(by_frame)).analyse_frames(_frames())


def test_one_face_split_by_missed_frames_and_a_jump_is_one_person_with_solid_evidence():
    """The issue's face swap: 12 and 7 frames apart, each piece under the rule, one face together."""
    by_frame = {i: [face_detection(i, (100, 80, 60, 60))] for i in range(12)}
    by_frame.update({i: [face_detection(i, (150, 90, 60, 60))] for i in range(14, 21)})
    verdict = _analyse(by_frame, 0.95)
    assert {face.track_id for face in verdict.faces} == {0} and len(verdict.faces) == 19
    assert verdict.verdict == "fake" and not verdict.other_tracks and "thin" not in verdict.explanation


def test_a_rare_face_shaped_track_is_judged_and_its_thin_evidence_makes_the_verdict_uncertain():
    by_frame = {i: [face_detection(i, (100, 80, 60, 60))] for i in (2, 7, 11, 18, 25, 30)}
    for score in (0.99, 0.01):
        verdict = _analyse(by_frame, score)
        assert len(verdict.faces) == 6 and verdict.fake_probability == pytest.approx(score)
        assert verdict.verdict == "uncertain"
        assert "evidence is thin" in verdict.explanation and "seen in 6 of 32 sampled frames" in verdict.explanation
        assert ("would read fake" if score > 0.5 else "would read real") in verdict.explanation


def test_a_low_confidence_swapped_face_is_judged_and_called_fake_when_seen_steadily():
    unsure = {i: [face_detection(i, (100, 80, 60, 60), confidence=0.927)] for i in range(12)}
    verdict = _analyse(unsure, 0.99)
    assert len(verdict.faces) == 12 and verdict.verdict == "uncertain"
    assert "low_confidence: median detector confidence 0.927" in verdict.explanation
    steady = {i: [face_detection(i, (100, 80, 60, 60), confidence=0.927)] for i in range(20)}
    assert _analyse(steady, 0.99).verdict == "fake"


def test_thin_evidence_beside_a_person_seen_well_neither_hides_a_fake_nor_clears_the_file():
    """A person in every frame, a second face in 10 frames at low confidence: the first decides `fake`; when the
    first is real, the second's thin evidence leaves the file `uncertain`, not `real`."""
    by_frame = {i: [face_detection(i, (20, 20, 60, 60))] for i in range(FRAMES)}
    for i in range(10):
        by_frame[i].append(face_detection(i, (200, 100, 60, 60), confidence=0.92))
    assert _analyse(by_frame, 0.99).verdict == "fake"
    cleared = _analyse(by_frame, 0.01)
    assert cleared.verdict == "uncertain" and "person 1: low_confidence" in cleared.explanation
    assert {face.track_id for face in cleared.faces} == {0, 1}


def test_a_file_whose_every_detection_is_a_texture_is_no_person_not_no_face():
    texture = {i: [face_detection(i, (230, 150, 60, 60), confidence=0.97, face_shaped=False)] for i in range(0, 32, 3)}
    verdict = _analyse(texture, 0.99)
    assert verdict.verdict == VERDICT_NO_PERSON and verdict.fake_probability is None and not verdict.faces
    [track] = verdict.other_tracks
    assert track.frames == 11 and track.reason.startswith("not_face_shaped")
    assert "none is a person" in verdict.explanation and "not_face_shaped" in verdict.explanation
    nothing = _analyse({}, 0.99)
    assert nothing.verdict == VERDICT_NO_FACE and not nothing.other_tracks
    table = cli.table([("wheel.mp4", 200, verdict.to_dict()), ("grey.mp4", 200, nothing.to_dict())])
    wheel_line, grey_line = table.splitlines()[1:]
    assert "no_person" in wheel_line and "not_face_shaped" in wheel_line
    assert "no_face" in grey_line and "No face was detected" in grey_line
