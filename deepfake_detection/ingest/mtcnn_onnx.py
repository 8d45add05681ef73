"""MTCNN (Zhang et al., 2016) on ONNX Runtime, from the weights the `mtcnn` package ships: no TensorFlow.

The ingest and the detection service used to import TensorFlow (3-4 s and
700 MB per process) only to run MTCNN's three small networks. Here the same
networks, written as ONNX graphs from `mtcnn` 1.0.0's own weight files
(`mtcnn_graphs.py`), are run by ONNX Runtime, which imports in a tenth of a
second.

The detection algorithm is mtcnn 1.0.0's, step for step, so the faces are the
same (tests compare both on real faces): an image pyramid from 12 /
`min_face_size` down by 0.709 (area resampling), PNet proposals over 0.6 with
per-scale and cross-scale NMS, squared boxes; RNet on 24 px bilinear crops
(over 0.7, NMS 0.7); ONet on 48 px crops (over 0.8, NMS 0.7 by the smaller
area) with the five landmarks. Two departures, both for precision: boxes and
landmarks are returned unrounded (the caller scales them back to the frame,
where a rounded pixel at a fifth of the size is five pixels), and a batch must
hold images of one size (the ingest's always do), so no padding is needed.
"""

import dataclasses
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from deepfake_detection.ingest import mtcnn_graphs
from deepfake_detection.ingest.mtcnn_graphs import ONET_SIDE, RNET_SIDE

# mtcnn 1.0.0's defaults.
PYRAMID_FACTOR = 0.709
PNET_CELL = 12
PNET_STRIDE = 2
DEFAULT_THRESHOLDS = (0.6, 0.7, 0.8)
_PNET_NMS_PER_SCALE, _PNET_NMS, _RNET_NMS, _ONET_NMS = 0.5, 0.7, 0.7, 0.7
_PATCHES_PER_RUN = 256


@dataclasses.dataclass(frozen=True)
class Face:
    """One detected face: box (x, y, width, height) and landmarks (left eye, right eye, nose, mouth left, mouth
    right; x, y rows) in the input image's pixels, unrounded."""

    box: Tuple[float, float, float, float]
    confidence: float
    landmarks: np.ndarray


def pyramid_scales(width: int, height: int, min_face_size: int) -> np.ndarray:
    """mtcnn's pyramid: from 12 / min_face_size, times 0.709 per level, while the short side stays over 12 px."""
    count = round(-(np.log(min(width, height) / PNET_CELL) / np.log(PYRAMID_FACTOR) + 1))
    return (PNET_CELL / min_face_size) * PYRAMID_FACTOR ** np.arange(max(0, count))


def nms(boxes: np.ndarray, threshold: float, by_min_area: bool = False) -> np.ndarray:
    """Indices kept by mtcnn's suppression of `boxes` (x1, y1, x2, y2; best first): a box goes when any box
    before it overlaps it over `threshold` (IoU, or the intersection over the smaller area)."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    width = np.maximum(0, np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None]))
    height = np.maximum(0, np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None]))
    intersection = width * height
    base = np.minimum(area[:, None], area[None]) if by_min_area else area[:, None] + area[None] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        overlap = intersection / base
    earlier = np.triu(np.ones_like(overlap, bool), k=1)
    return np.where(~((overlap > threshold) & earlier).any(axis=0))[0]


def _nms_per_image(rows: np.ndarray, threshold: float, by_min_area: bool = False, sort: bool = True) -> np.ndarray:
    """Rows (image, x1, y1, x2, y2, score, ...) suppressed within each image, best first."""
    if sort:
        rows = rows[np.argsort(rows[:, 5])[::-1]]
    kept = []
    for image in np.unique(rows[:, 0]):
        own = rows[rows[:, 0] == image]
        kept.append(own[nms(own[:, 1:5], threshold, by_min_area)])
    return np.concatenate(kept) if kept else rows[:0]


def _squared(rows: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    width, height = rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]
    side = np.maximum(width, height)
    rows[:, 1] += width / 2 - side / 2
    rows[:, 2] += height / 2 - side / 2
    rows[:, 3], rows[:, 4] = rows[:, 1] + side, rows[:, 2] + side
    return rows


def _regressed(rows: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    rows = rows.copy()
    width, height = rows[:, 3] - rows[:, 1] + 1, rows[:, 4] - rows[:, 2] + 1
    rows[:, 1:5] += offsets * np.stack([width, height, width, height], axis=-1)
    return rows


def crop_and_resize(images: np.ndarray, rows: np.ndarray, side: int) -> np.ndarray:
    """TensorFlow's crop_and_resize (bilinear, 0 outside the image) of mtcnn's boxes, as mtcnn calls it: box
    corners divided by the image's size, samples spread over (size - 1)."""
    count, height, width, channels = images.shape
    steps = np.arange(side) / (side - 1)

    def axis(start: np.ndarray, end: np.ndarray, size: int) -> Tuple[np.ndarray, ...]:
        """Per box and sample: lower index, upper index, weight of the upper, inside the image."""
        start, end = start / size * (size - 1), end / size * (size - 1)
        at = start[:, None] + (end - start)[:, None] * steps[None]
        lower = np.floor(at)
        inside = (at >= 0) & (at <= size - 1)
        low, high = np.clip(lower, 0, size - 1).astype(np.intp), np.clip(np.ceil(at), 0, size - 1).astype(np.intp)
        return low, high, (at - lower).astype(np.float32), inside

    top, bottom, dy, inside_y = axis(rows[:, 2], rows[:, 4], height)
    left, right, dx, inside_x = axis(rows[:, 1], rows[:, 3], width)
    pixels = images.reshape(-1, channels)
    base = (rows[:, 0].astype(np.intp) * height)[:, None]

    def at(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return pixels[((base + y) * width)[:, :, None] + x[:, None, :]]

    dx, dy = dx[:, None, :, None], dy[:, :, None, None]
    upper_left, lower_left = at(top, left), at(bottom, left)
    upper = upper_left + (at(top, right) - upper_left) * dx
    lower = lower_left + (at(bottom, right) - lower_left) * dx
    inside = (inside_y[:, :, None] & inside_x[:, None, :])[..., None]
    return np.where(inside, upper + (lower - upper) * dy, np.float32(0))


def _normalized(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) - np.float32(127.5)) / np.float32(128)


class Mtcnn:
    """PNet, RNet and ONet as ONNX Runtime sessions; `detect` takes a batch of same-sized RGB images.

    One intra-op thread by default: the ingest keeps the other core busy
    with a second worker process or with decoding, and a second ONNX Runtime
    thread spinning for work would take that core from it.
    """

    def __init__(self, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # No memory arena: it keeps the largest pyramid level's buffers for
        # good (two 720p frames at full scale: 1480 MiB peak with it, 717
        # MiB without, 7 % slower), and a service holds one detector per core.
        options.enable_cpu_mem_arena = False
        weights = mtcnn_graphs.mtcnn_weights()
        self._sessions = {
            name: onnxruntime.InferenceSession(build(weights[name]), options, providers=["CPUExecutionProvider"])
            for name, build in (("pnet", mtcnn_graphs.pnet), ("rnet", mtcnn_graphs.rnet), ("onet", mtcnn_graphs.onet))
        }

    def _run(self, name: str, nhwc: np.ndarray) -> list:
        return self._sessions[name].run(None, {"input": np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))})

    def _on_patches(self, name: str, normalized: np.ndarray, rows: np.ndarray, side: int) -> List[np.ndarray]:
        """A stage's outputs on the boxes' patches, cut and run `_PATCHES_PER_RUN` at a time: a large frame
        has thousands of PNet proposals, and their patches at once held 36 MB more for 32 frames of 720p."""
        runs = [
            self._run(name, crop_and_resize(normalized, rows[start : start + _PATCHES_PER_RUN], side))
            for start in range(0, len(rows), _PATCHES_PER_RUN)
        ]
        return [np.concatenate(outputs) for outputs in zip(*runs, strict=True)]

    def detect(
        self,
        images: Sequence[np.ndarray],
        min_face_size: int = 20,
        thresholds: Tuple[float, float, float] = DEFAULT_THRESHOLDS,
    ) -> List[List[Face]]:
        """Faces per image, most confident first."""
        if not len(images):
            return []
        if len({image.shape for image in images}) != 1:
            raise ValueError(f"MTCNN batches hold images of one size, got {sorted({i.shape for i in images})}")
        pixels = np.stack(images)
        normalized = _normalized(pixels)
        rows = self._proposals(pixels, min_face_size, thresholds[0])
        if len(rows):
            rows = self._refine(normalized, rows, thresholds[1])
        if len(rows):
            rows = self._output(normalized, rows, thresholds[2])
        return self._faces(rows, len(images), normalized.shape[1:3])

    def _proposals(self, pixels: np.ndarray, min_face_size: int, threshold: float) -> np.ndarray:
        """PNet over the pyramid: rows (image, x1, y1, x2, y2, score), squared.

        The levels are area-resampled from the 8-bit pixels (mtcnn resamples
        the normalised floats: at most half a grey level apart, three times
        faster)."""
        _, height, width, _ = pixels.shape
        found = []
        for scale in pyramid_scales(width, height, min_face_size):
            size = (int(width * scale), int(height * scale))
            if min(size) < PNET_CELL:
                continue
            scaled = np.stack([cv2.resize(image, size, interpolation=cv2.INTER_AREA) for image in pixels])
            regression, scores = self._run("pnet", _normalized(scaled))
            image, y, x = np.where(scores[..., 1] > threshold)
            offsets = regression[image, y, x]
            corner = np.stack([x, y], axis=-1) * PNET_STRIDE + 1
            span = PNET_CELL - 1
            rows = np.concatenate(
                [
                    image[:, None],
                    (corner + offsets[:, :2] * span) / scale,
                    (corner + span + offsets[:, 2:] * span) / scale,
                    scores[image, y, x, 1][:, None],
                ],
                axis=1,
            )
            found.append(_nms_per_image(rows, _PNET_NMS_PER_SCALE))
        rows = np.concatenate(found) if found else np.zeros((0, 6))
        return _squared(_nms_per_image(rows, _PNET_NMS)) if len(rows) else rows

    def _refine(self, normalized: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
        regression, scores = self._on_patches("rnet", normalized, rows, RNET_SIDE)
        rows = _regressed(np.concatenate([rows[:, :5], scores[:, 1:]], axis=1), regression)
        rows = rows[rows[:, 5] > threshold]
        return _squared(_nms_per_image(rows, _RNET_NMS)) if len(rows) else rows

    def _output(self, normalized: np.ndarray, rows: np.ndarray, threshold: float) -> np.ndarray:
        regression, marks, scores = self._on_patches("onet", normalized, rows, ONET_SIDE)
        width, height = rows[:, 3:4] - rows[:, 1:2] + 1, rows[:, 4:5] - rows[:, 2:3] + 1
        xs, ys = width * marks[:, :5] + rows[:, 1:2] - 1, height * marks[:, 5:] + rows[:, 2:3] - 1
        rows = _regressed(np.concatenate([rows[:, :5], scores[:, 1:]], axis=1), regression)
        rows = np.concatenate([rows, xs, ys], axis=1)
        rows = rows[rows[:, 5] > threshold]
        return _nms_per_image(rows, _ONET_NMS, by_min_area=True) if len(rows) else rows

    @staticmethod
    def _faces(rows: np.ndarray, count: int, shape: Tuple[int, int]) -> List[List[Face]]:
        """Rows -> Faces per image, boxes clipped to the image as mtcnn does (landmarks are not)."""
        height, width = shape
        faces: List[List[Face]] = [[] for _ in range(count)]
        for row in rows:
            x1, x2 = np.clip(row[[1, 3]], 0, width - 1)
            y1, y2 = np.clip(row[[2, 4]], 0, height - 1)
            landmarks = np.stack([row[6:11], row[11:16]], axis=-1)
            faces[int(row[0])].append(Face((x1, y1, x2 - x1, y2 - y1), float(row[5]), landmarks))
        return faces
