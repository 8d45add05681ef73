"""The face outline follows the five landmarks: position, size, turn and which way is down."""

import numpy as np
import pytest

from deepfake_detection import face_geometry

# Left eye, right eye, nose, left and right mouth corner of an upright face: eyes 40 px apart, mouth 30 px below.
UPRIGHT = np.array([[40.0, 50.0], [80.0, 50.0], [60.0, 65.0], [45.0, 80.0], [75.0, 80.0]])


def _turned(points: np.ndarray, degrees: float, centre=(60.0, 60.0)) -> np.ndarray:
    angle = np.radians(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return (points - centre) @ rotation.T + centre


def test_axes_of_an_upright_face():
    across, down, eye_distance, mouth_distance = face_geometry.face_axes(UPRIGHT)
    np.testing.assert_allclose(across, [1, 0])
    np.testing.assert_allclose(down, [0, 1])
    assert (eye_distance, mouth_distance) == pytest.approx((40.0, 30.0))


def test_down_points_from_the_eyes_to_the_mouth_even_upside_down():
    _, down, _, mouth_distance = face_geometry.face_axes(_turned(UPRIGHT, 180))
    np.testing.assert_allclose(down, [0, -1], atol=1e-12)
    assert mouth_distance == pytest.approx(30.0)


def test_outline_of_an_upright_face_is_symmetric_from_brows_to_chin():
    points = face_geometry.outline_points(UPRIGHT, forehead=0.5)
    mirrored = np.stack([120.0 - points[:, 0], points[:, 1]], axis=1)
    assert {tuple(p) for p in np.round(mirrored, 6)} == {tuple(p) for p in np.round(points, 6)}
    assert points[:, 1].min() == pytest.approx(50.0 - 0.5 * 30.0)  # brows: half the eye-to-mouth distance up
    assert points[:, 1].max() == pytest.approx(80.0 + 0.8 * 30.0)  # chin below the mouth
    assert points[:, 0].min() == pytest.approx(40.0 - 0.6 * 40.0)  # temples beyond the eyes


def test_outline_turns_with_the_face_and_only_the_brows_follow_the_forehead():
    np.testing.assert_allclose(
        face_geometry.outline_points(_turned(UPRIGHT, 30)), _turned(face_geometry.outline_points(UPRIGHT), 30)
    )
    low, high = face_geometry.outline_points(UPRIGHT, 0.1), face_geometry.outline_points(UPRIGHT, 0.7)
    moved = np.flatnonzero(np.abs(low - high).max(axis=1) > 0)
    assert moved.tolist() == [0, 1]
    np.testing.assert_allclose(low[:2, 1] - high[:2, 1], 0.6 * 30.0)
