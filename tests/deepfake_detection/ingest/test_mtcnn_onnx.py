"""MTCNN on ONNX Runtime against the mtcnn package (TensorFlow) on real faces, and its pieces on their own."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage
import skimage.data

from deepfake_detection.ingest import mtcnn_onnx
from deepfake_detection.ingest.faces import iou

_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def _lfw_faces(count):
    """LFW faces upscaled to 100 px on a grey border: faces MTCNN finds."""
    lfw = np.load(os.path.join(os.path.dirname(skimage.__file__), "data", "lfw_subset.npy"))
    images = []
    for grey in lfw[:count]:
        face = cv2.resize((grey * 255).astype(np.uint8), (100, 100), interpolation=cv2.INTER_CUBIC)
        images.append(np.stack([cv2.copyMakeBorder(face, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=128)] * 3, -1))
    return images


@pytest.fixture(scope="module")
def onnx_mtcnn():
    return mtcnn_onnx.Mtcnn()


def test_faces_boxes_landmarks_and_confidences_match_the_mtcnn_package(onnx_mtcnn):
    from mtcnn import MTCNN

    reference = MTCNN(device="CPU:0")
    images = [skimage.data.astronaut()] + _lfw_faces(8)
    mine = [onnx_mtcnn.detect([image])[0] for image in images]
    theirs = [reference.detect_faces([image])[0] for image in images]
    assert sum(len(faces) for faces in theirs) >= 8
    for found, expected in zip(mine, theirs, strict=True):
        assert len(found) == len(expected)
        for face, want in zip(found, expected, strict=True):
            assert iou(tuple(round(v) for v in face.box), tuple(want["box"])) > 0.95
            assert abs(face.confidence - want["confidence"]) < 0.01
            marks = np.array([want["keypoints"][name] for name in _KEYPOINTS])
            assert np.abs(face.landmarks - marks).max() <= 1.5


def test_a_batch_finds_what_single_images_find_and_an_empty_frame_finds_nothing(onnx_mtcnn):
    faces = _lfw_faces(3)
    blank = np.zeros_like(faces[0])
    batch = onnx_mtcnn.detect([faces[0], blank, faces[1], faces[2]])
    assert [len(found) for found in batch] == [1, 0, 1, 1]
    single = onnx_mtcnn.detect([faces[1]])[0][0]
    assert np.allclose(batch[2][0].box, single.box, atol=1e-3)
    assert onnx_mtcnn.detect([]) == []


def test_images_of_two_sizes_in_one_batch_are_refused(onnx_mtcnn):
    with pytest.raises(ValueError, match="one size"):
        onnx_mtcnn.detect([np.zeros((50, 50, 3), np.uint8), np.zeros((60, 50, 3), np.uint8)])


def test_nms_drops_a_box_that_any_better_box_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40], [2, 0, 12, 10]], float)
    assert mtcnn_onnx.nms(boxes, 0.5).tolist() == [0, 2]
    small_inside = np.array([[0, 0, 20, 20], [5, 5, 10, 10]], float)
    assert mtcnn_onnx.nms(small_inside, 0.7).tolist() == [0, 1]
    assert mtcnn_onnx.nms(small_inside, 0.7, by_min_area=True).tolist() == [0]


def test_crop_and_resize_samples_corners_bilinearly_and_zero_outside():
    image = np.arange(5 * 5, dtype=np.float32).reshape(1, 5, 5, 1)
    # A box from pixel 0 to 5 (mtcnn divides by the size, TensorFlow spreads over size - 1): the corners.
    whole = mtcnn_onnx.crop_and_resize(image, np.array([[0, 0, 0, 5, 5]], float), 2)
    assert whole[0, :, :, 0].tolist() == [[0, 4], [20, 24]]
    outside = mtcnn_onnx.crop_and_resize(image, np.array([[0, -5, -5, 0, 0]], float), 2)
    assert outside[0, 0, 0, 0] == 0 and outside[0, 1, 1, 0] == 0


def test_the_pyramid_starts_at_12_over_the_smallest_face_and_stops_near_12_px():
    scales = mtcnn_onnx.pyramid_scales(640, 480, 20)
    assert scales[0] == pytest.approx(0.6)
    assert np.allclose(scales[1:] / scales[:-1], mtcnn_onnx.PYRAMID_FACTOR)
    assert 12 <= 480 * scales[-1] < 12 / mtcnn_onnx.PYRAMID_FACTOR


def test_the_detector_runs_without_importing_tensorflow():
    code = (
        "import sys, numpy as np; from deepfake_detection.ingest.detector import FaceDetector; "
        "FaceDetector(0.9).detect([np.zeros((120, 160, 3), np.uint8)], [0]); "
        "print(sorted(m for m in ('tensorflow', 'keras', 'apache_beam', 'tfx') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
