"""Face detection, the keep rule, crop geometry and face tracks across frames.

The geometry is pure (boxes in, boxes out) so it is tested without a detector.
`FaceDetector` wraps one MTCNN instance that a Beam worker builds once in
`DoFn.setup` and reuses: a new detector per frame is about 2x slower and leaks.
"""

import dataclasses
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from components.video_example_gen.sampling import detection_scale

Box = Tuple[int, int, int, int]  # x, y, width, height in frame pixels

# mtcnn 1.0.0 returns no faces when min_face_size is above 20; frames are
# rescaled before detection instead.
_MTCNN_MIN_FACE_SIZE = 20
# MTCNN's keypoint names, in the order of the stored landmarks.
_MTCNN_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclasses.dataclass(frozen=True)
class Detection:
    """One face in one frame; `landmarks` are MTCNN's five keypoints as x0, y0, ..., x4, y4 in frame pixels."""

    frame_index: int
    box: Box
    confidence: float
    landmarks: Tuple[float, ...] = ()

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


@dataclasses.dataclass
class FaceTrack:
    """The detections of one person across sampled frames, in frame order."""

    detections: List[Detection]

    @property
    def mean_area(self) -> float:
        return float(np.mean([d.area for d in self.detections]))

    @property
    def best_confidence(self) -> float:
        return max(d.confidence for d in self.detections)


def margin_crop_box(box: Box, frame_width: int, frame_height: int, margin: float) -> Box:
    """Grows a box by `margin` of its width/height on each side, clipped to the frame."""
    x, y, w, h = box
    dx, dy = int(round(w * margin)), int(round(h * margin))
    left, top = max(0, x - dx), max(0, y - dy)
    right, bottom = min(frame_width, x + w + dx), min(frame_height, y + h + dy)
    return left, top, max(0, right - left), max(0, bottom - top)


def crop_face(image: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """Returns the margin crop of `box` from a frame, resized to `size` x `size`."""
    height, width = image.shape[:2]
    left, top, w, h = margin_crop_box(box, width, height, margin)
    crop = image[top : top + h, left : left + w]
    interpolation = cv2.INTER_AREA if min(w, h) > size else cv2.INTER_CUBIC
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def crop_landmarks(landmarks: Sequence[float], crop_box: Box) -> List[float]:
    """Frame-pixel landmarks -> coordinates in the crop, as fractions of its width and height."""
    if len(landmarks) != 10:
        raise ValueError(f"Expected 5 landmarks as 10 values, got {len(landmarks)}")
    left, top, width, height = crop_box
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    return ((points - [left, top]) / [max(1, width), max(1, height)]).ravel().tolist()


def keep_tracks(tracks: Sequence[FaceTrack], min_confidence_multi: float, min_track_faces: int) -> List[FaceTrack]:
    """The keep rule, by person: the only track, or one that persists or is confident.

    A face that persists across `min_track_faces` sampled frames is a face,
    whatever its confidence, so two people sharing every frame are both kept;
    a short-lived track is kept only when its best face is above
    `min_confidence_multi` (the design's bar for crowded frames).
    """
    if len(tracks) == 1:
        return list(tracks)
    return [
        track
        for track in tracks
        if len(track.detections) >= min_track_faces or track.best_confidence > min_confidence_multi
    ]


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def build_tracks(detections_by_frame: Sequence[Sequence[Detection]], min_iou: float) -> List[FaceTrack]:
    """Groups faces into tracks by IoU with each track's latest box; largest track first.

    Detector order is not identity: two people swap places in the output list
    from frame to frame. Each face joins the track whose last box overlaps it
    most (at least `min_iou`, one face per track per frame), else starts a new
    track. Tracks are ordered by number of faces, then by mean face area.
    """
    tracks: List[FaceTrack] = []
    for detections in detections_by_frame:
        taken: Dict[int, bool] = {}
        for detection in sorted(detections, key=lambda d: -d.confidence):
            best, best_iou = None, min_iou
            for number, track in enumerate(tracks):
                overlap = iou(track.detections[-1].box, detection.box)
                if number not in taken and overlap >= best_iou:
                    best, best_iou = number, overlap
            if best is None:
                tracks.append(FaceTrack([detection]))
                taken[len(tracks) - 1] = True
            else:
                tracks[best].detections.append(detection)
                taken[best] = True
    return sorted(tracks, key=lambda t: (-len(t.detections), -t.mean_area))


class FaceDetector:
    """One MTCNN detector, applied to batches of same-sized frames.

    Frames go through MTCNN `batch_size` at a time: one call per frame wastes
    time, while all 32 frames of a 540p video at once take about 3 GiB.
    """

    def __init__(self, min_detection_confidence: float, batch_size: int = 8):
        from mtcnn import MTCNN

        self._mtcnn = MTCNN(device="CPU:0")
        self._min_confidence = min_detection_confidence
        self._batch_size = batch_size

    def detect(self, frames: Sequence[np.ndarray], frame_indices: Sequence[int]) -> List[List[Detection]]:
        """Detects faces in BGR frames of one video; boxes come back in full-frame pixels."""
        if not frames:
            return []
        height, width = frames[0].shape[:2]
        scale = detection_scale(width)
        size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
        rgb = [cv2.cvtColor(cv2.resize(f, size) if scale != 1.0 else f, cv2.COLOR_BGR2RGB) for f in frames]
        results = []
        for start in range(0, len(rgb), self._batch_size):
            batch = rgb[start : start + self._batch_size]
            results.extend(self._mtcnn.detect_faces(batch, min_face_size=_MTCNN_MIN_FACE_SIZE))
        return [
            [
                self._to_detection(face, index, scale, width, height)
                for face in faces
                if face["confidence"] >= self._min_confidence
            ]
            for faces, index in zip(results, frame_indices, strict=True)
        ]

    @staticmethod
    def _to_detection(face: dict, frame_index: int, scale: float, width: int, height: int) -> Detection:
        x, y, w, h = (v / scale for v in face["box"])
        left, top = max(0, int(round(x))), max(0, int(round(y)))
        right, bottom = min(width, int(round(x + w))), min(height, int(round(y + h)))
        landmarks = tuple(float(v) / scale for name in _MTCNN_KEYPOINTS for v in face["keypoints"][name])
        return Detection(frame_index, (left, top, right - left, bottom - top), float(face["confidence"]), landmarks)
