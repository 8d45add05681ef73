"""Face regions from MTCNN's five landmarks, alignment of two faces, and colour transfer between them.

Pure numpy/OpenCV, shared by the sample-data generator (which paints fakes
through these regions) and the self-blending of the Trainer (which makes
pseudo-fakes through deformed versions of them), so both align and
colour-correct a pasted face as swap tools do. Landmarks are an array of
shape [5, 2] in pixels, in MTCNN's order: left eye, right eye, nose, left and
right mouth corner.
"""

import math
from typing import Tuple

import cv2
import numpy as np

LEFT_EYE, RIGHT_EYE, NOSE, MOUTH_LEFT, MOUTH_RIGHT = range(5)


def face_axes(landmarks: np.ndarray) -> Tuple[np.ndarray, np.ndarray, float, float]:
    """(across, down, eye distance, eye-to-mouth distance): the face's own frame of reference.

    Scalar maths on the five points: numpy's per-call cost on arrays this
    small was a tenth of a self-blend.
    """
    (lx, ly), (rx, ry), _, (mlx, mly), (mrx, mry) = np.asarray(landmarks, np.float64).tolist()
    eye_distance = max(math.hypot(rx - lx, ry - ly), 1e-3)
    ax, ay = (rx - lx) / eye_distance, (ry - ly) / eye_distance
    dx, dy = -ay, ax
    to_mouth_x, to_mouth_y = (mlx + mrx - lx - rx) / 2, (mly + mry - ly - ry) / 2
    if to_mouth_x * dx + to_mouth_y * dy < 0:
        dx, dy = -dx, -dy
    mouth_distance = max(to_mouth_x * dx + to_mouth_y * dy, 0.3 * eye_distance)
    return np.array([ax, ay]), np.array([dx, dy]), eye_distance, mouth_distance


# The inner face's outline, one row per point: weights of the five landmarks it starts from, then how far it
# moves across the face (eye distances), down it (eye-to-mouth distances) and up by the `forehead` setting.
_OUTLINE = np.array(
    [
        # left eye, right eye, nose, mouth left, mouth right | across | down | forehead
        [1, 0, 0, 0, 0, -0.25, 0.0, 1],  # left brow
        [0, 1, 0, 0, 0, 0.25, 0.0, 1],  # right brow
        [1, 0, 0, 0, 0, -0.6, 0.1, 0],  # left temple
        [0, 1, 0, 0, 0, 0.6, 0.1, 0],  # right temple
        [0, 0, 0, 1, 0, -0.45, 0.1, 0],  # left cheek
        [0, 0, 0, 0, 1, 0.45, 0.1, 0],  # right cheek
        [0, 0, 0, 1, 0, -0.15, 0.6, 0],  # left jaw
        [0, 0, 0, 0, 1, 0.15, 0.6, 0],  # right jaw
        [0, 0, 0, 0.5, 0.5, 0.0, 0.8, 0],  # chin
    ],
    np.float64,
)
_ANCHORS, _ACROSS_STEPS, _DOWN_STEPS, _UP_STEPS = np.split(_OUTLINE, [5, 6, 7], axis=1)


def outline_points(landmarks: np.ndarray, forehead: float = 0.45) -> np.ndarray:
    """Points around the inner face (brows or forehead, temples, cheeks, chin) from five landmarks.

    `forehead` is how far above the eyes the outline reaches, in eye-to-mouth
    distances: SBI sometimes leaves the forehead out of its masks.
    """
    landmarks = np.asarray(landmarks, np.float64)
    across, down, eye_w, mouth_h = face_axes(landmarks)
    down_steps = _DOWN_STEPS - forehead * _UP_STEPS
    return _ANCHORS @ landmarks + (_ACROSS_STEPS * eye_w) * across + (down_steps * mouth_h) * down


def hull_mask(landmarks: np.ndarray, shape: Tuple[int, int], forehead: float = 0.45) -> np.ndarray:
    """float32 [H, W] mask, 1 inside the convex hull of the face outline."""
    mask = np.zeros(shape, np.float32)
    hull = cv2.convexHull(np.round(outline_points(landmarks, forehead)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def ellipse_mask(landmarks: np.ndarray, shape: Tuple[int, int], scale: float = 1.0) -> np.ndarray:
    """float32 [H, W] mask, 1 inside the ellipse fitted to the face outline (scaled about its centre)."""
    mask = np.zeros(shape, np.float32)
    (cx, cy), (width, height), angle = cv2.fitEllipse(outline_points(landmarks).astype(np.float32))
    axes = (max(1, int(width * scale / 2)), max(1, int(height * scale / 2)))
    cv2.ellipse(mask, (int(round(cx)), int(round(cy))), axes, angle, 0, 360, 1.0, -1)
    return mask


def part_mask(landmarks: np.ndarray, shape: Tuple[int, int], part: str) -> np.ndarray:
    """float32 [H, W] mask over the `mouth` (mouth and chin) or the `eyes` (eyes and brows) only."""
    landmarks = np.asarray(landmarks, np.float64)
    across, down, eye_w, mouth_h = face_axes(landmarks)
    if part == "mouth":
        centre = landmarks[[MOUTH_LEFT, MOUTH_RIGHT]].mean(axis=0) + 0.1 * mouth_h * down
        axes = (0.75 * eye_w, 0.5 * mouth_h)
    elif part == "eyes":
        centre = landmarks[[LEFT_EYE, RIGHT_EYE]].mean(axis=0) - 0.1 * mouth_h * down
        axes = (1.0 * eye_w, 0.4 * mouth_h)
    else:
        raise ValueError(f"Unknown face part {part!r}; expected 'mouth' or 'eyes'")
    mask = np.zeros(shape, np.float32)
    angle = float(np.degrees(np.arctan2(across[1], across[0])))
    centre_px = (int(round(centre[0])), int(round(centre[1])))
    cv2.ellipse(mask, centre_px, (max(1, int(axes[0])), max(1, int(axes[1]))), angle, 0, 360, 1.0, -1)
    return mask


def align_face(
    image: np.ndarray, from_landmarks: np.ndarray, to_landmarks: np.ndarray, shape: Tuple[int, int]
) -> np.ndarray:
    """`image` moved by the similarity transform that maps its landmarks onto `to_landmarks` (swap tools' alignment)."""
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(from_landmarks, np.float32).reshape(-1, 2), np.asarray(to_landmarks, np.float32).reshape(-1, 2)
    )
    if matrix is None:
        matrix = np.float32([[1, 0, 0], [0, 1, 0]])
    return cv2.warpAffine(image, matrix, (shape[1], shape[0]), borderMode=cv2.BORDER_REPLICATE)


def colour_transfer(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer in Lab: uint8 RGB `source` takes `target`'s mean and spread under `mask`."""
    weight = (mask > 0.5).astype(np.uint8)
    if not cv2.countNonZero(weight):
        return source
    source_lab = cv2.cvtColor(source, cv2.COLOR_RGB2LAB)
    target_lab = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)
    s_mean, s_std = (v.ravel() for v in cv2.meanStdDev(source_lab, mask=weight))
    t_mean, t_std = (v.ravel() for v in cv2.meanStdDev(target_lab, mask=weight))
    gain = (t_std + 1e-3) / (s_std + 1e-3)
    moved = source_lab.astype(np.float32) * gain.astype(np.float32) + (t_mean - s_mean * gain).astype(np.float32)
    return cv2.cvtColor(np.clip(moved, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
