"""The person rule: which tracks may decide a verdict, driven with detector outputs and with the real MTCNN."""

import numpy as np
import pytest
import skimage.data

from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import Detection, FaceTrack
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.persons import (
    REASON_FEW_FRAMES,
    REASON_LOW_CONFIDENCE,
    REASON_NOT_FACE_SHAPED,
    PersonRule,
    is_face_shaped,
)

# MTCNN's five points on an upright face in a 100 x 120 box at (50, 40): eyes, nose, mouth corners.
FACE_MARKS = (80.0, 85.0, 120.0, 85.0, 100.0, 105.0, 84.0, 125.0, 116.0, 125.0)
FACE_BOX = (50, 40, 100, 120)


def _track(frames, confidence=0.99, box=FACE_BOX, marks=FACE_MARKS):
    return FaceTrack([Detection(i, box, confidence, marks) for i in frames])


def _judged(tracks, frames=32):
    people = PersonRule().split(tracks, frames)
    return people.tracks, people.thin, people.others


def test_a_person_seen_in_every_frame_is_a_person_on_solid_evidence():
    person = _track(range(32))
    assert _judged([person]) == ([person], [None], [])


def test_a_background_object_seen_in_a_few_frames_never_decides():
    """The motorcycle wheel of a real video: 5 of 32 frames at 0.91-0.97, beside the person."""
    person = _track(range(32))
    wheel = FaceTrack([Detection(i, (400, 300, 60, 60), c, ()) for i, c in enumerate([0.91, 0.93, 0.97, 0.95, 0.92])])
    flash = _track([7], confidence=1.0, box=(10, 10, 40, 40), marks=tuple(v * 0.4 for v in FACE_MARKS))
    people, thin, others = _judged([person, wheel, flash])
    assert people == [person] and thin == [None]
    assert [track for track, _ in others] == [wheel, flash]
    assert all(reason.startswith(REASON_FEW_FRAMES) and "beside a person seen in 32" in reason for _, reason in others)


def test_a_persistent_object_without_a_face_layout_is_not_a_person():
    upside_down = tuple(np.array(FACE_MARKS).reshape(5, 2)[[1, 0, 2, 4, 3]].ravel())  # eyes swapped: roll 180
    no_marks = FaceTrack([Detection(i, FACE_BOX, 0.99, ()) for i in range(32)])
    for track in (_track(range(32), marks=upside_down), no_marks):
        people, _, [(rejected, reason)] = _judged([track])
        assert not people and rejected is track and reason.startswith(REASON_NOT_FACE_SHAPED)


def test_a_non_face_texture_seen_rarely_is_not_a_person_even_alone():
    texture = FaceTrack([Detection(i, (400, 300, 60, 60), 0.97, ()) for i in (3, 9, 20)])
    people, _, [(_, reason)] = _judged([texture])
    assert not people and reason.startswith(REASON_NOT_FACE_SHAPED)


def test_a_rare_face_shaped_track_counts_on_thin_evidence():
    """The issue's two-person video: the only track found, 6 detections in 32 frames."""
    rare = _track([2, 7, 11, 18, 25, 30])
    people, [thin], others = _judged([rare])
    assert people == [rare] and not others
    assert thin == f"{REASON_FEW_FRAMES}: seen in 6 of 32 sampled frames, under 8"


def test_a_low_confidence_swapped_face_counts_and_its_evidence_is_thin_unless_steady():
    """A swapped face lowers MTCNN's confidence: the issue's fake had a median of 0.927 over 12 of 32 frames."""
    swapped = _track(range(12), confidence=0.927)
    people, [thin], _ = _judged([swapped])
    assert people == [swapped] and thin == f"{REASON_LOW_CONFIDENCE}: median detector confidence 0.927, under 0.95"
    rare_and_unsure = _track(range(5), confidence=0.92)
    assert _judged([rare_and_unsure])[1] == [
        f"{REASON_FEW_FRAMES}: seen in 5 of 32 sampled frames, under 8, "
        f"{REASON_LOW_CONFIDENCE}: median detector confidence 0.920, under 0.95"
    ]
    steady = _track(range(14), confidence=0.92)
    assert _judged([steady]) == ([steady], [None], [])


def test_frames_needed_never_exceeds_the_frames_sampled():
    rule = PersonRule()
    assert rule.frames_needed(32) == 8
    assert rule.frames_needed(1) == 1
    image_face = _track([0])
    assert _judged([image_face], frames=1) == ([image_face], [None], [])  # an image: its one face is a person


@pytest.mark.parametrize("bad", [{"min_frame_share": 1.5}, {"min_frames": 0}, {"min_confidence": -0.1}])
def test_invalid_rules_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        PersonRule(**bad)


def test_landmark_layout_of_a_turned_and_tilted_face_is_face_shaped():
    points = np.array(FACE_MARKS).reshape(5, 2)
    centre = points.mean(axis=0)
    angle = np.radians(25)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = (points - centre) @ rotation.T + centre
    assert is_face_shaped(Detection(0, FACE_BOX, 0.99, tuple(tilted.ravel())))
    squeezed = points.copy()
    squeezed[1, 0] = squeezed[0, 0] + 4  # eyes 4 px apart in a 100 px box: no face
    assert not is_face_shaped(Detection(0, FACE_BOX, 0.99, tuple(squeezed.ravel())))


def test_real_mtcnn_landmarks_on_a_real_face_are_face_shaped():
    image = skimage.data.astronaut()[:, :, ::-1].copy()
    detector = FaceDetector.from_config(IngestConfig())
    faces = detector.detect_at([image], [0], 1.0)[0]
    assert faces and all(is_face_shaped(face) for face in faces)
