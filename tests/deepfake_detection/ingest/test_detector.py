"""The keyframe detector against full detection on every frame, with the real MTCNN on generated clips."""

import os

import cv2
import numpy as np
import pytest
import skimage

from deepfake_detection import sample_data
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import build_tracks, iou
from deepfake_detection.ingest.persons import is_face_shaped


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


def _small_grey_face_clip(frames=16, person=9, size=32, contrast=1.0):
    """A small grey LFW face drifting over a grey wall with sensor noise (person 9 at 32 px: MTCNN finds it in 6
    of 16 frames; person 28 at 40 px and half the contrast, a washed-out face: in none at 0.9)."""
    lfw = np.load(os.path.join(os.path.dirname(skimage.__file__), "data", "lfw_subset.npy"))
    face = cv2.resize((lfw[person] * 255).astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA)
    face = 110 + (face.astype(np.float32) - face.mean()) * contrast
    noise = np.random.default_rng(0)
    clip = []
    for t in range(frames):
        image = np.full((240, 320), 110, np.float32)
        image[100 : 100 + size, 140 + t : 140 + size + t] = face
        image = np.clip(image + noise.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        clip.append(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
    return clip


def test_a_face_found_in_few_frames_is_looked_for_again_and_found_in_most():
    clip, indices = _small_grey_face_clip(), list(range(0, 32, 2))
    without = FaceDetector(0.9, detect_every=4, face_px=48, recall_squares=0).detect(clip, indices)
    again = FaceDetector(0.9, detect_every=4, face_px=48)
    found = again.detect(clip, indices)
    seen_once, seen_again = sum(map(len, without)), sum(map(len, found))
    assert seen_once < 8 <= seen_again  # under, then over, the person rule's 25 % of 32 frames (of 16 here: 4)
    squares, recovered = again.last_recall
    assert squares == 16 - seen_once and recovered == seen_again - seen_once
    [track] = build_tracks(found, 0.3)
    assert all(is_face_shaped(d) for d in track.detections)
    for d in track.detections:
        x, y, w, h = d.box
        drift = indices.index(d.frame_index)
        assert abs(x + w / 2 - (156 + drift)) < 8 and abs(y + h / 2 - 116) < 10


def test_a_face_found_nowhere_at_the_detectors_confidence_is_found_at_a_lower_one_and_followed():
    clip = _small_grey_face_clip(person=28, size=40, contrast=0.5)
    without = FaceDetector(0.9, detect_every=4, face_px=48, recall_squares=0).detect(clip, list(range(16)))
    assert not any(without)
    again = FaceDetector(0.9, detect_every=4, face_px=48)
    found = again.detect(clip, list(range(16)))
    assert sum(map(len, found)) >= 8 and again.last_recall[1] > 0
    assert all(0.8 <= d.confidence and is_face_shaped(d) for faces in found for d in faces)


def test_the_second_look_is_bounded_and_skips_faces_seen_often(two_person_clip, following):
    clip, indices = _small_grey_face_clip(), list(range(16))
    capped = FaceDetector(0.9, detect_every=4, face_px=48, recall_squares=3)
    capped.detect(clip, indices)
    assert capped.last_recall[0] == 3
    following.detect(two_person_clip, list(range(10)))
    assert following.last_recall == (0, 0)
