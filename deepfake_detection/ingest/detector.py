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
   misses sends its frame back to full detection;
4. looks again for a face it found in few frames (under `_RECALL_BELOW_SHARE`
   of them) in the frames where it was not found: MTCNN on a square around
   where it was seen nearest in time, upscaled so that the face is `_RECALL_FACE_PX`
   wide (a small grey face MTCNN misses at 25 px it finds at 48), keeping a
   face-shaped detection at `_RECALL_MIN_CONFIDENCE` there (a face is known
   to be near). At most `_RECALL_MAX_SQUARES` squares a video: a swapped
   face, found less often and less surely than a real one, is not left
   looking rare for want of a second look (docs/verdicts.md). A video where
   nothing was found at all has its keyframes detected once more at the
   design scale at that confidence, face-shaped faces only, to seed it.

`detect_every=1, face_px=0` is the reference: every sampled frame in full at
the design scale. The ingest benchmark measures faces found and crop overlap
against it.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from deepfake_detection.ingest import keyframes
from deepfake_detection.ingest.faces import Detection, build_tracks, face_shift
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.mtcnn_onnx import Face, Mtcnn
from deepfake_detection.ingest.persons import is_face_shaped
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
# The second look (step 4): for a face seen in under this share of the frames, in squares this many times its
# size around where it was seen nearest in time, with the face this many pixels wide, at most this many squares a
# video, nearest frames first; a face-shaped face at this confidence is kept. Tracks for it are grouped at this
# overlap. Measured in docs/verdicts.md.
_RECALL_BELOW_SHARE = 0.5
_RECALL_FACTOR = 3.0
_RECALL_FACE_PX = 48
_RECALL_MAX_SQUARES = 64
_RECALL_MIN_CONFIDENCE = 0.8
_RECALL_TRACK_IOU = 0.3


class FaceDetector:
    """One MTCNN detector; `detect` finds the faces of one video's sampled frames (same-sized BGR frames)."""

    def __init__(
        self,
        min_detection_confidence: float,
        batch_size: int = 8,
        detect_every: int = 1,
        face_px: int = 0,
        recall_squares: int = _RECALL_MAX_SQUARES,
    ):
        self._mtcnn = Mtcnn()
        self._min_confidence = min_detection_confidence
        self._batch_size = batch_size
        self._detect_every = detect_every
        self._face_px = face_px
        self._recall_squares = recall_squares
        # Squares looked at again by the latest `detect`, and the faces they found: the second look's cost.
        self.last_recall = (0, 0)

    @classmethod
    def from_config(cls, ingest_config: IngestConfig, recall_squares: int = _RECALL_MAX_SQUARES) -> "FaceDetector":
        """The ingest's detector; `recall_squares=0` turns the second look off (to measure what it costs)."""
        return cls(
            ingest_config.min_detection_confidence,
            ingest_config.detection_batch_size,
            ingest_config.detect_every,
            ingest_config.detection_face_px,
            recall_squares,
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
        faces = [found.get(position, []) for position in range(len(frames))]  # no face expected: none searched
        if self._recall_squares and not any(faces):
            faces = self._look_closer(frames, frame_indices, keys, detection_scale(frames[0].shape[1]))
        return self._look_again(frames, frame_indices, faces)

    def _look_closer(self, frames, frame_indices, keys, design):  # noqa: ANN001, ANN202 - faces per position
        """The keyframes of a video where nothing was found, at the design scale, keeping face-shaped faces at
        the second look's confidence: the seeds of the second look (step 4)."""
        faces: List[List[Detection]] = [[] for _ in frames]
        for position, found in self._detect_positions(
            frames, frame_indices, keys, design, _RECALL_MIN_CONFIDENCE
        ).items():
            faces[position] = [face for face in found if is_face_shaped(face)]
        return faces

    def _look_again(
        self, frames: Sequence[np.ndarray], frame_indices: Sequence[int], faces: List[List[Detection]]
    ) -> List[List[Detection]]:
        """`faces` with the faces found by a second look for the faces seen in few frames (step 4)."""
        searches = plan_recall(faces, frame_indices, self._recall_squares)
        side = int(_RECALL_FACTOR * _RECALL_FACE_PX)
        squares = [keyframes.search_square(seen.box, _RECALL_FACTOR) for _, seen in searches]
        crops = [_square_crop(frames[p], square, side) for (p, _), square in zip(searches, squares, strict=True)]
        frame_size = frames[0].shape[1::-1]
        results = self._run(crops, _SQUARES_PER_CALL, _RECALL_MIN_CONFIDENCE)
        found = 0
        for (position, seen), square, candidates in zip(searches, squares, results, strict=True):
            index, scale = frame_indices[position], side / square[2]
            detections = [self._to_detection(f, index, scale, square[:2], frame_size) for f in candidates]
            match = same_face(seen, detections)
            if match is not None:
                faces[position] = keyframes.distinct_faces([*faces[position], match])
                found += 1
        self.last_recall = (len(searches), found)
        return faces

    def _detect_positions(self, frames, frame_indices, positions, scale, min_confidence=None):  # noqa: ANN001, ANN202
        """Full detection of the frames at `positions`: {position: faces}."""
        images, indices = [frames[p] for p in positions], [frame_indices[p] for p in positions]
        return dict(zip(positions, self.detect_at(images, indices, scale, min_confidence), strict=True))

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

    def detect_at(  # noqa: ANN201 - faces per frame
        self,
        frames: Sequence[np.ndarray],
        frame_indices: Sequence[int],
        scale: float,
        min_confidence: Optional[float] = None,
    ):
        """Full-frame detection of same-sized BGR frames resized by `scale`, faces under `min_confidence` (default
        the detector's) dropped."""
        if not frames:
            return []
        height, width = frames[0].shape[:2]
        size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
        rgb = [cv2.cvtColor(_resized(f, size), cv2.COLOR_BGR2RGB) for f in frames]
        return [
            [self._to_detection(face, index, scale, (0.0, 0.0), (width, height)) for face in faces]
            for faces, index in zip(self._run(rgb, 0, min_confidence), frame_indices, strict=True)
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

    def _run(
        self, rgb_images: Sequence[np.ndarray], per_call: int = 0, min_confidence: Optional[float] = None
    ) -> List[List[Face]]:
        """MTCNN on same-sized RGB images, `per_call` (default `batch_size`) at a time; faces under
        `min_confidence` (default the detector's) dropped."""
        per_call = per_call or self._batch_size
        threshold = self._min_confidence if min_confidence is None else min_confidence
        results: List[List[Face]] = []
        for start in range(0, len(rgb_images), per_call):
            batch = list(rgb_images[start : start + per_call])
            results.extend(self._mtcnn.detect(batch, min_face_size=keyframes.MTCNN_SMALLEST_FACE_PX))
        return [[face for face in faces if face.confidence >= threshold] for faces in results]

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


def plan_recall(
    faces: Sequence[Sequence[Detection]], frame_indices: Sequence[int], max_squares: int
) -> List[Tuple[int, Detection]]:
    """(position, the face's detection nearest in time) for each frame where a face seen in few frames was not
    found: faces that are face-shaped in some frame and seen in under `_RECALL_BELOW_SHARE` of the frames, the
    frames nearest to where each was seen first, at most `max_squares` in all."""
    position_of = {index: position for position, index in enumerate(frame_indices)}
    wanted: List[Tuple[int, int, Detection]] = []
    for track in build_tracks(faces, _RECALL_TRACK_IOU):
        seen = {position_of[d.frame_index]: d for d in track.detections}
        if len(seen) >= _RECALL_BELOW_SHARE * len(faces) or not any(map(is_face_shaped, track.detections)):
            continue
        for position in set(range(len(faces))) - set(seen):
            nearest = min(seen, key=lambda p: (abs(p - position), p))
            wanted.append((abs(nearest - position), position, seen[nearest]))
    wanted.sort(key=lambda item: item[:2])
    return [(position, detection) for _, position, detection in wanted[:max_squares]]


def same_face(seen: Detection, candidates: Sequence[Detection]) -> Optional[Detection]:
    """The face-shaped candidate that is the face `seen` elsewhere (the one it moved least to), or None."""
    shifts = [(face_shift(seen, c), c) for c in candidates if is_face_shaped(c)]
    shifts = [(shift, c) for shift, c in shifts if shift is not None]
    return min(shifts, key=lambda pair: (pair[0], -pair[1].confidence))[1] if shifts else None


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
