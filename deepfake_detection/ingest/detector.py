"""MTCNN on the sampled frames of one video: full detection on keyframes, search squares in between.

One `FaceDetector` wraps one MTCNN (`mtcnn_onnx`: the mtcnn package's
networks on ONNX Runtime, no TensorFlow) that a worker builds once (Beam's
`DoFn.setup`, the standalone ingest's worker start, the service's pool) and
reuses for every video. Per video it:

1. probes the first keyframe at half the design's width-based scale (the
   DFDC winners' half-size frames), or at the design scale when that finds
   nothing, and picks the keyframes' scale from the faces found
   (`keyframes.scale_for_faces`): a 300 px face is detected at 48 px, at a
   fortieth of the pixels;
2. detects every keyframe in full at that scale, in batches;
3. in the frames between two keyframes, runs MTCNN on one small square per
   expected face, all squares of the video in batches; a face the square
   misses sends its frame back to full detection.

`detect_every=1, face_px=0` is the reference: every sampled frame in full at
the design scale. The ingest benchmark measures faces found and crop overlap
against it.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from deepfake_detection.ingest import keyframes
from deepfake_detection.ingest.faces import Detection
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.mtcnn_onnx import Face, Mtcnn
from deepfake_detection.ingest.sampling import detection_scale

# A search square is this many times the face's longer side: room for the
# face to move half its size away from where it was predicted.
_SEARCH_FACTOR = 2.0
# A face in a search square is this many pixels wide: a face already found
# needs no room for smaller ones, so it sits closer to MTCNN's 20 px than on
# keyframes (measured on the bench videos: crop IoU 0.95 at 32 px as at 64 px,
# 10 % less time).
_SEARCH_FACE_PX = 32
# The probe's scale relative to the design's.
_PROBE_SHARE = 0.5
# Search squares go through MTCNN this many at a time, which bounds one call's
# memory (a call's fixed cost is small on ONNX Runtime: 23 squares took 57 ms
# in one call and 47 ms in three).
_SQUARES_PER_CALL = 64


class FaceDetector:
    """One MTCNN detector; `detect` finds the faces of one video's sampled frames (same-sized BGR frames)."""

    def __init__(self, min_detection_confidence: float, batch_size: int = 8, detect_every: int = 1, face_px: int = 0):
        self._mtcnn = Mtcnn()
        self._min_confidence = min_detection_confidence
        self._batch_size = batch_size
        self._detect_every = detect_every
        self._face_px = face_px

    @classmethod
    def from_config(cls, ingest_config: IngestConfig) -> "FaceDetector":
        return cls(
            ingest_config.min_detection_confidence,
            ingest_config.detection_batch_size,
            ingest_config.detect_every,
            ingest_config.detection_face_px,
        )

    def detect(self, frames: Sequence[np.ndarray], frame_indices: Sequence[int]) -> List[List[Detection]]:
        """Faces per frame, boxes and landmarks in full-frame pixels."""
        if not frames:
            return []
        keys = keyframes.keyframe_positions(len(frames), self._detect_every)
        scale, first = self._probe(frames[keys[0]], frame_indices[keys[0]], detection_scale(frames[0].shape[1]))
        found: Dict[int, Optional[List[Detection]]] = {keys[0]: first}
        found.update(self._detect_positions(frames, frame_indices, keys[1:], scale))
        found.update(self._follow(frames, frame_indices, keyframes.plan_searches(keys, found)))
        lost = [position for position, faces in found.items() if faces is None]
        found.update(self._detect_positions(frames, frame_indices, lost, scale))
        return [found.get(position, []) for position in range(len(frames))]  # no face expected: none searched

    def _detect_positions(self, frames, frame_indices, positions, scale):  # noqa: ANN001, ANN202
        """Full detection of the frames at `positions`: {position: faces}."""
        detections = self.detect_at([frames[p] for p in positions], [frame_indices[p] for p in positions], scale)
        return dict(zip(positions, detections, strict=True))

    def _probe(self, frame: np.ndarray, frame_index: int, design: float) -> Tuple[float, List[Detection]]:
        """The keyframes' scale, from the faces of the first keyframe, and that keyframe's faces."""
        if self._face_px <= 0:
            return design, self.detect_at([frame], [frame_index], design)[0]
        coarse = design * _PROBE_SHARE
        faces = self.detect_at([frame], [frame_index], coarse)[0]
        if not faces:
            return design, self.detect_at([frame], [frame_index], design)[0]
        widths = [d.box[2] for d in faces]
        scale = keyframes.scale_for_faces(widths, self._face_px, design)
        if min(widths) * coarse < 2 * keyframes.MTCNN_SMALLEST_FACE_PX:
            # A face under 40 px at the probe's scale is found but placed
            # coarsely: detect this keyframe again at the finer scale.
            faces = self.detect_at([frame], [frame_index], scale)[0]
        return scale, faces

    def detect_at(self, frames: Sequence[np.ndarray], frame_indices: Sequence[int], scale: float):  # noqa: ANN201
        """Full-frame detection of same-sized BGR frames resized by `scale`."""
        if not frames:
            return []
        height, width = frames[0].shape[:2]
        size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
        rgb = [cv2.cvtColor(_resized(f, size), cv2.COLOR_BGR2RGB) for f in frames]
        return [
            [self._to_detection(face, index, scale, (0.0, 0.0), (width, height)) for face in faces]
            for faces, index in zip(self._run(rgb), frame_indices, strict=True)
        ]

    def _follow(self, frames, frame_indices, searches):  # noqa: ANN001, ANN202 - {position: faces or None}
        """Faces of the frames between keyframes, from search squares; None for a frame where one was missed."""
        side = int(_SEARCH_FACTOR * _SEARCH_FACE_PX)
        squares = [keyframes.search_square(box, _SEARCH_FACTOR) for _, box in searches]
        crops = [_square_crop(frames[p], square, side) for (p, _), square in zip(searches, squares, strict=True)]
        frame_size = frames[0].shape[1::-1]
        followed: Dict[int, Optional[List[Detection]]] = {position: [] for position, _ in searches}
        for (position, box), square, faces in zip(searches, squares, self._run(crops, _SQUARES_PER_CALL), strict=True):
            index, scale = frame_indices[position], side / square[2]
            match = keyframes.best_match(
                box, [self._to_detection(f, index, scale, square[:2], frame_size) for f in faces]
            )
            if match is None or followed[position] is None:
                followed[position] = None
            else:
                followed[position].append(match)
        return {p: faces if faces is None else keyframes.distinct_faces(faces) for p, faces in followed.items()}

    def _run(self, rgb_images: Sequence[np.ndarray], per_call: int = 0) -> List[List[Face]]:
        """MTCNN on same-sized RGB images, `per_call` (default `batch_size`) at a time; unsure faces dropped."""
        per_call = per_call or self._batch_size
        results: List[List[Face]] = []
        for start in range(0, len(rgb_images), per_call):
            batch = list(rgb_images[start : start + per_call])
            results.extend(self._mtcnn.detect(batch, min_face_size=keyframes.MTCNN_SMALLEST_FACE_PX))
        return [[face for face in faces if face.confidence >= self._min_confidence] for faces in results]

    @staticmethod
    def _to_detection(
        face: Face, frame_index: int, scale: float, origin: Tuple[float, float], frame_size: Tuple[int, int]
    ) -> Detection:
        """MTCNN's face in a resized image whose top-left is `origin` in the frame -> a Detection in frame pixels."""
        width, height = frame_size
        x, y, w, h = face.box
        x, y, w, h = x / scale + origin[0], y / scale + origin[1], w / scale, h / scale
        left, top = max(0, int(round(x))), max(0, int(round(y)))
        right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
        landmarks = tuple(float(v) for v in (face.landmarks / scale + origin).ravel())
        return Detection(frame_index, (left, top, right - left, bottom - top), face.confidence, landmarks)


def _resized(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Area averaging to shrink (no aliasing at a fifth of the size), bilinear to enlarge."""
    if size == (image.shape[1], image.shape[0]):
        return image
    shrink = size[0] < image.shape[1]
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _square_crop(frame: np.ndarray, square: Tuple[int, int, int], side: int) -> np.ndarray:
    """The RGB pixels of a square of the frame (black where it leaves the frame), resized to `side` x `side`."""
    left, top, size = square
    height, width = frame.shape[:2]
    canvas = np.zeros((size, size, 3), np.uint8)
    x0, y0, x1, y1 = max(0, left), max(0, top), min(width, left + size), min(height, top + size)
    if x1 > x0 and y1 > y0:
        canvas[y0 - top : y1 - top, x0 - left : x1 - left] = frame[y0:y1, x0:x1]
    return cv2.cvtColor(_resized(canvas, (side, side)), cv2.COLOR_BGR2RGB)
