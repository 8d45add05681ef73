"""Crop geometry, IoU tracks, and the real MTCNN detector on a real face."""

import cv2
import numpy as np
import pytest
import skimage.data

from deepfake_detection import sample_data
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import (
    Detection,
    build_tracks,
    crop_face,
    crop_landmarks,
    iou,
    margin_crop_box,
)
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.sampling import SampledFrame
from deepfake_detection.ingest.videos import find_faces
from tests.helpers import face_detection


def test_margin_adds_thirty_percent_on_each_side():
    assert margin_crop_box((100, 100, 50, 80), 640, 480, 0.3) == (85, 76, 80, 128)


def test_margin_is_clipped_at_the_frame_borders():
    assert margin_crop_box((5, 4, 50, 40), 640, 480, 0.3) == (0, 0, 70, 56)
    assert margin_crop_box((600, 450, 40, 30), 640, 480, 0.3) == (588, 441, 52, 39)


def test_crop_is_resized_to_a_square_of_the_configured_size():
    image = np.zeros((480, 640, 3), np.uint8)
    image[100:180, 100:150] = 255
    crop = crop_face(image, (100, 100, 50, 80), margin=0.0, size=64)
    assert crop.shape == (64, 64, 3)
    assert crop.mean() == pytest.approx(255, abs=1)


def test_crop_landmarks_are_fractions_of_the_crop():
    crop_box = margin_crop_box((100, 100, 50, 80), 640, 480, 0.3)
    marks = crop_landmarks([115, 130, 135, 130, 125, 150, 117, 165, 133, 165], crop_box)
    left, top, width, height = crop_box
    assert marks[:2] == pytest.approx([(115 - left) / width, (130 - top) / height])
    assert all(0 < v < 1 for v in marks)
    with pytest.raises(ValueError, match="5 landmarks"):
        crop_landmarks([1, 2], crop_box)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_tracks_follow_people_when_detector_order_swaps():
    left = [(10 + 2 * t, 10, 40, 40) for t in range(4)]
    right = [(200 - 2 * t, 20, 60, 60) for t in range(4)]
    frames = []
    for t in range(4):
        pair = [Detection(t, left[t], 0.99), Detection(t, right[t], 0.98)]
        frames.append(pair if t % 2 else pair[::-1])
    frames.append([Detection(4, right[3], 0.99)])
    tracks = build_tracks(frames, min_iou=0.3)
    assert len(tracks) == 2
    assert [d.box for d in tracks[0].detections] == right + [right[3]]
    assert [d.box for d in tracks[1].detections] == left


def _moving(frames, box):
    return [[face_detection(t, box)] for t in frames]


def test_one_face_split_by_a_missed_frame_and_a_jump_is_one_track():
    """The issue's face-swap fake: its one face came out as two tracks of 12 and 7 frames."""
    frames = _moving(range(12), (100, 100, 60, 60)) + [[]] + _moving(range(13, 20), (150, 110, 60, 60))
    assert iou((100, 100, 60, 60), (150, 110, 60, 60)) < 0.3  # the tracker's overlap alone splits it
    [track] = build_tracks(frames, min_iou=0.3)
    assert [d.frame_index for d in track.detections] == [*range(12), *range(13, 20)]


def test_one_face_that_grows_between_two_frames_is_one_track():
    frames = _moving(range(5), (100, 100, 60, 60)) + _moving(range(5, 10), (90, 50, 95, 95))
    assert iou((100, 100, 60, 60), (90, 50, 95, 95)) < 0.3
    assert [len(t.detections) for t in build_tracks(frames, min_iou=0.3)] == [10]


def test_two_faces_are_never_joined():
    """Seen in the same frame, or too far apart or too different in size to be one face moving."""
    left, right = _moving(range(4), (10, 10, 40, 40)), _moving(range(4), (60, 10, 40, 40))
    together = [a + b for a, b in zip(left, right, strict=True)]
    assert [len(t.detections) for t in build_tracks(together, min_iou=0.3)] == [4, 4]
    far = _moving(range(4), (10, 10, 40, 40)) + _moving(range(4, 8), (200, 150, 40, 40))
    assert [len(t.detections) for t in build_tracks(far, min_iou=0.3)] == [4, 4]
    head_and_face = _moving(range(4), (50, 10, 180, 210)) + _moving(range(4, 8), (100, 60, 85, 110))
    assert [len(t.detections) for t in build_tracks(head_and_face, min_iou=0.3)] == [4, 4]
    smaller = _moving(range(4), (100, 100, 90, 90)) + _moving(range(4, 8), (120, 120, 40, 40))
    assert [len(t.detections) for t in build_tracks(smaller, min_iou=0.3)] == [4, 4]


def test_tracks_of_equal_length_are_ordered_by_face_size():
    frames = [[Detection(0, (0, 0, 10, 10), 0.99), Detection(0, (100, 100, 50, 50), 0.99)]]
    tracks = build_tracks(frames, min_iou=0.3)
    assert tracks[0].detections[0].box == (100, 100, 50, 50)


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(min_detection_confidence=0.9)


def test_mtcnn_finds_the_astronauts_face(detector):
    frame = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    [faces] = detector.detect([frame], [0])
    assert len(faces) == 1
    x, y, w, h = faces[0].box
    assert faces[0].confidence > 0.99
    assert 150 < x < 210 and 40 < y < 90 and 60 < w < 110 and 80 < h < 130


def test_boxes_come_back_in_full_frame_pixels_after_rescale(detector):
    frame = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    small = cv2.resize(frame, (256, 256))
    [faces] = detector.detect([small], [3])
    [full] = detector.detect([frame], [0])
    assert faces[0].frame_index == 3
    assert iou(tuple(2 * v for v in faces[0].box), full[0].box) > 0.7


def test_frames_without_faces_give_empty_lists_in_any_batching():
    blank = np.zeros((240, 320, 3), np.uint8)
    frame = cv2.cvtColor(cv2.resize(skimage.data.astronaut(), (320, 320))[:240], cv2.COLOR_RGB2BGR)
    for batch_size in (1, 2, 8):
        result = FaceDetector(0.9, batch_size).detect([blank, frame, blank, frame], [0, 1, 2, 3])
        assert [[d.frame_index for d in faces] for faces in result] == [[], [1], [], [3]]


def test_both_people_of_a_two_person_clip_are_kept_with_landmarks(detector):
    faces = sample_data.load_faces()
    portraits = [n for n, face in enumerate(faces) if face.portrait]
    scene = sample_data.make_scene(faces, portraits[5:7], sample_data.load_background("brick"), 6, (480, 360), 3)
    frames = [SampledFrame(t, t / 15, cv2.cvtColor(f, cv2.COLOR_RGB2BGR)) for t, f in enumerate(scene.film())]
    found = find_faces(frames, detector, IngestConfig(image_size=64))
    assert len(found.tracks) == 2
    assert [len(track.detections) for track in found.tracks] == [6, 6]
    for track, landmarks in zip(found.tracks, found.landmarks, strict=True):
        assert len(landmarks) == len(track.detections)
        eyes_y = np.array([marks[1] for marks in landmarks])
        mouth_y = np.array([marks[7] for marks in landmarks])
        assert np.all((0.1 < eyes_y) & (eyes_y < mouth_y) & (mouth_y < 0.9))
