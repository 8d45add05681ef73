"""What a face example's input looks like, apart from its label: the features that drift between spans.

A new phone, a new platform's compression or darker rooms change these, and a
detector trained on last month's videos may not hold on them; TFX's
DistributionValidator compares their distributions span by span
(schemas/drift_config.pbtxt). Per face, on the face's box in the source frame
(before the crop is resized, which would blur away both the sharpness and the
compression grid): brightness and contrast (mean and spread of the grey levels),
sharpness (variance of the Laplacian) and blockiness (how much larger the steps
between pixels are on the 8-pixel grid of block codecs than between it). Per
video: frame size, frame rate and codec, as the container declares them.
"""

from typing import Dict, Sequence, Union

import cv2
import numpy as np

from deepfake_detection import contract
from deepfake_detection.ingest.sampling import VideoInfo

# The block size of the codecs' transform (JPEG, MPEG-2/4, H.264's 8x8 and its 4x4 inside it).
BLOCK = 8
Value = Union[float, int, str]


def face_look(image: np.ndarray, box: Sequence[int]) -> Dict[str, float]:
    """Brightness, contrast, sharpness and blockiness of the face box `(x, y, w, h)` of a BGR frame."""
    x, y, w, h = (int(v) for v in box)
    height, width = image.shape[:2]
    left, top = max(0, x), max(0, y)
    right, bottom = min(width, x + w), min(height, y + h)
    grey = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_BGR2GRAY).astype(np.float32)
    return {
        contract.BRIGHTNESS_KEY: float(grey.mean()),
        contract.CONTRAST_KEY: float(grey.std()),
        contract.SHARPNESS_KEY: float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        contract.BLOCKINESS_KEY: blockiness(grey, left, top),
    }


def blockiness(grey: np.ndarray, left: int = 0, top: int = 0) -> float:
    """Mean step across the frame's 8-pixel block edges over the mean step inside blocks (about 1: no blocks).

    `left`, `top`: where `grey` sits in the frame, so the grid is the codec's.
    """
    ratios = [_edge_ratio(grey, left), _edge_ratio(grey.T, top)]
    return float(np.mean([r for r in ratios if r is not None])) if any(r is not None for r in ratios) else 1.0


def _edge_ratio(grey: np.ndarray, offset: int):  # noqa: ANN202 - a float, or None for a strip too narrow
    steps = np.abs(np.diff(grey, axis=1))
    if steps.shape[1] < 2 * BLOCK:
        return None
    on_edge = (np.arange(steps.shape[1]) + offset + 1) % BLOCK == 0
    inside = steps[:, ~on_edge].mean()
    return float(steps[:, on_edge].mean() / max(inside, 1e-3))


def video_look(info: VideoInfo) -> Dict[str, Value]:
    """Frame size, frame rate and codec of a video, as its container declares them."""
    return {
        contract.FRAME_WIDTH_KEY: info.width,
        contract.FRAME_HEIGHT_KEY: info.height,
        contract.FRAME_RATE_KEY: float(info.fps),
        contract.CODEC_KEY: info.codec,
    }
