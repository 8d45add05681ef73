"""The fakes of the sample data: how a swap tool replaces the recorded frame's face before encoding (another
person's face, feathered or Poisson-cloned, with Reinhard colour transfer; a part of it; or the same face re-posed),
and where in the frame it changed. `sample_data` draws the scenes and writes the videos."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence, Tuple

import cv2
import numpy as np

from deepfake_detection import face_geometry

if TYPE_CHECKING:  # the faces are sample_data's; an import at run time would be circular
    from deepfake_detection.sample_data import FaceSource

MANIPULATIONS = ("face_swap", "poisson_swap", "partial_face", "self_warp")


def _aligned(donor: FaceSource, landmarks: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """The donor's face moved onto `landmarks`."""
    return face_geometry.align_face(donor.image, donor.landmarks, landmarks, shape)


@dataclasses.dataclass(frozen=True)
class Swap:
    """One fake's settings, drawn once and kept for the whole video, as a swap tool's are."""

    kind: str
    donors: Sequence[FaceSource]
    part: str
    mask_scale: float
    forehead: float
    softness: float
    ratio: float
    repose: Tuple[float, float, float, float]


def draw_swap(kind: str, donors: Sequence[FaceSource], rng: np.random.Generator) -> Swap:
    """Mask size and softness, the face part, the blend ratio and the re-posing of a `kind` fake."""
    if kind not in MANIPULATIONS:
        raise ValueError(f"Unknown manipulation {kind!r}; expected one of {list(MANIPULATIONS)}")
    return Swap(
        kind=kind,
        donors=donors,
        part=str(rng.choice(["mouth", "eyes"])),
        mask_scale=rng.uniform(0.8, 1.0),
        forehead=rng.uniform(0.2, 0.45),
        softness=rng.uniform(0.08, 0.2),
        ratio=rng.uniform(0.6, 1.0),
        repose=(rng.uniform(-6, 6), rng.uniform(1.03, 1.1), *rng.uniform(-3, 3, size=2)),
    )


def _reposed(frame: np.ndarray, landmarks: np.ndarray, repose: Tuple[float, float, float, float]) -> np.ndarray:
    """The same face slightly re-posed (turn, scale, shift): the source of a same-identity blend."""
    angle, scale, dx, dy = repose
    matrix = cv2.getRotationMatrix2D(tuple(landmarks.mean(axis=0)), angle, scale)
    matrix[:, 2] += dx, dy
    return cv2.warpAffine(frame, matrix, frame.shape[1::-1], borderMode=cv2.BORDER_REFLECT)


def _region(landmarks: np.ndarray, shape: Tuple[int, int], swap: Swap) -> np.ndarray:
    """The float32 mask one face of a `swap` fake is pasted through, before feathering."""
    if swap.kind == "self_warp":
        return face_geometry.ellipse_mask(landmarks, shape, scale=swap.mask_scale) * swap.ratio
    if swap.kind == "partial_face":
        return face_geometry.part_mask(landmarks, shape, swap.part)
    if swap.kind == "poisson_swap":
        return face_geometry.hull_mask(landmarks, shape, forehead=swap.forehead)
    return face_geometry.ellipse_mask(landmarks, shape, scale=swap.mask_scale)


def _feather(landmarks: np.ndarray, swap: Swap) -> float:
    """The Gaussian sigma, in pixels, that softens a feathered paste's mask edge."""
    _, _, eye_w, _ = face_geometry.face_axes(landmarks)
    return (0.15 if swap.kind == "self_warp" else swap.softness) * eye_w


def _alpha(mask: np.ndarray, softness: float) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), max(1.0, softness))


def _feathered(canvas: np.ndarray, face: np.ndarray, mask: np.ndarray, softness: float) -> np.ndarray:
    alpha = _alpha(mask, softness)[..., None]
    return (alpha * face + (1 - alpha) * canvas.astype(np.float32)).astype(np.uint8)


def manipulate(frame: np.ndarray, faces_landmarks: Sequence[np.ndarray], swap: Swap) -> np.ndarray:
    """One recorded frame with every face replaced as `swap` says: what a swap tool writes before encoding.

    The donor face is warped straight from its source onto the frame's
    landmarks, so it carries neither the camera's resampling nor its noise:
    only the colour correction ties it to the frame, as with real swaps.
    """
    shape = frame.shape[:2]
    for landmarks, donor in zip(faces_landmarks, swap.donors, strict=True):
        mask = _region(landmarks, shape, swap)
        if swap.kind == "self_warp":
            face = _reposed(frame, landmarks, swap.repose)
        else:
            face = face_geometry.colour_transfer(_aligned(donor, landmarks, shape), frame, mask)
        if swap.kind == "poisson_swap" and mask.any():
            x, y, w, h = cv2.boundingRect((mask > 0).astype(np.uint8))
            centre = (x + w // 2, y + h // 2)
            frame = cv2.seamlessClone(face, frame, (mask * 255).astype(np.uint8), centre, cv2.NORMAL_CLONE)
        else:
            frame = _feathered(frame, face, mask, _feather(landmarks, swap))
    return frame


def changed_mask(shape: Tuple[int, int], faces_landmarks: Sequence[np.ndarray], swap: Swap) -> np.ndarray:
    """float32 [H, W]: how much of each pixel `manipulate` replaced (0 untouched, 1 wholly the pasted face).

    The ground truth of what a fake changed, recomputed from the very
    regions and feathering `manipulate` painted through, so a map of what
    looks manipulated can be scored against it: a feathered paste's weight is
    its blurred mask; Poisson cloning rewrites every pixel of its mask (and
    drifts the rest of the mask's bounding box by a few grey levels, left
    out: no face is pasted there).
    """
    weight = np.zeros(shape, np.float32)
    for landmarks in faces_landmarks:
        mask = _region(landmarks, shape, swap)
        face = (mask > 0).astype(np.float32) if swap.kind == "poisson_swap" else _alpha(mask, _feather(landmarks, swap))
        weight = np.maximum(weight, face)
    return weight


# Encoder and rate-control flags per codec name; VP9 needs `-b:v 0` for constant quality.
