"""The keyframe detector against full detection on every frame, with the real MTCNN on generated clips."""

import cv2
import numpy as np
import pytest

from deepfake_detection import sample_data
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import iou


@pytest.fixture(scope="module")
def two_person_clip():
    faces = sample_data.load_faces()
    portraits = [n for n, face in enumerate(faces) if face.portrait]
    scene = sample_data.make_scene(faces, portraits[2:4], sample_data.load_background("grass"), 10, (640, 480), 11)
    return [cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) for frame in scene.film()]


@pytest.fixture(scope="module")
def reference():
    return FaceDetector(0.9, detect_every=1, face_px=0)


@pytest.fixture(scope="module")
def following():
    return FaceDetector(0.9, detect_every=4, face_px=48)


def assert_same_faces(found, expected, min_iou):
    assert [len(faces) for faces in found] == [len(faces) for faces in expected]
    for faces, reference_faces in zip(found, expected, strict=True):
        for want in reference_faces:
            best = max(faces, key=lambda d: iou(d.box, want.box))
            assert iou(best.box, want.box) >= min_iou
            assert best.frame_index == want.frame_index
            assert len(best.landmarks) == 10


def test_following_faces_between_keyframes_finds_the_faces_of_full_detection(two_person_clip, reference, following):
    indices = list(range(0, 10 * 3, 3))
    expected = reference.detect(two_person_clip, indices)
    assert sum(len(faces) for faces in expected) == 20
    assert_same_faces(following.detect(two_person_clip, indices), expected, 0.75)


def test_a_face_that_leaves_between_keyframes_is_not_invented(two_person_clip, reference, following):
    blank = np.zeros_like(two_person_clip[0])
    frames = [two_person_clip[0], two_person_clip[1], blank, two_person_clip[3], two_person_clip[4]]
    found = following.detect(frames, [0, 1, 2, 3, 4])
    assert found[2] == []
    assert_same_faces(found, reference.detect(frames, [0, 1, 2, 3, 4]), 0.75)


def test_frames_without_any_face_stay_empty(following):
    blank = np.zeros((360, 480, 3), np.uint8)
    assert following.detect([blank] * 6, list(range(6))) == [[]] * 6
