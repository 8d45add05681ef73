"""Face boxes, crop geometry and face tracks across frames (which tracks are people: `persons`).

The geometry is pure (boxes in, boxes out) so it is tested without a
detector; the detector itself is `detector.FaceDetector`.
"""

import dataclasses
import itertools
import math
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]  # x, y, width, height in frame pixels

# Two detections are one face when, between them, the face moved at most this many face sizes and its size
# changed at most this many times: a head turning or the camera zooming between two sampled frames, where the
# boxes' overlap drops under the tracker's. MTCNN's other box on a portrait, around the whole head at twice the
# face's size, is kept apart: its crops are not the face's (docs/verdicts.md).
SAME_FACE_MAX_SHIFT = 1.0
SAME_FACE_MAX_SCALE = 1.6


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

    @property
    def centre(self) -> Tuple[float, float]:
        """The face's centre: the mean of its landmarks (steadier than a box MTCNN redraws), else the box's."""
        if len(self.landmarks) == 10:
            return float(np.mean(self.landmarks[0::2])), float(np.mean(self.landmarks[1::2]))
        x, y, width, height = self.box
        return x + width / 2, y + height / 2

    @property
    def size(self) -> float:
        return float(max(self.box[2], self.box[3], 1))


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


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def face_shift(a: Detection, b: Detection) -> Optional[float]:
    """How far the face moved from `a` to `b`, in face sizes; None when the two cannot be one face (its size
    changed more than `SAME_FACE_MAX_SCALE` times, or it moved more than `SAME_FACE_MAX_SHIFT` sizes)."""
    larger, smaller = max(a.size, b.size), min(a.size, b.size)
    if larger > SAME_FACE_MAX_SCALE * smaller:
        return None
    (ax, ay), (bx, by) = a.centre, b.centre
    shift = math.hypot(bx - ax, by - ay) / larger
    return shift if shift <= SAME_FACE_MAX_SHIFT else None


def build_tracks(detections_by_frame: Sequence[Sequence[Detection]], min_iou: float) -> List[FaceTrack]:
    """Groups faces into tracks, one per face; largest track first. The one tracker of the ingest and serving.

    Detector order is not identity: two people swap places in the output list
    from frame to frame. Each face joins the track whose last box overlaps it
    most (at least `min_iou`, one face per track per frame), else starts a new
    track; then pieces of one face that a missed frame, a jump or a change of
    scale split are joined (`join_tracks`). Tracks are ordered by number of
    faces, then by mean face area.
    """
    return sorted(
        join_tracks(_overlap_tracks(detections_by_frame, min_iou)), key=lambda t: (-len(t.detections), -t.mean_area)
    )


def join_tracks(tracks: Sequence[FaceTrack]) -> List[FaceTrack]:
    """Joins the pieces of one face's track: two tracks never seen in the same frame whose detections at their
    closest frames are one face (`face_shift`), the closest pair first, until no pair is left.

    A face the detector missed in a frame, or that moved or grew more than
    the boxes' overlap allows, starts a new track; left apart, each piece
    looks rare, and a rare track is thin evidence (`persons`). Two people
    are seen in the same frames, so they are never joined.
    """
    joined = [list(track.detections) for track in tracks]
    while True:
        pairs = [(_join_cost(joined[i], joined[j]), i, j) for i, j in itertools.combinations(range(len(joined)), 2)]
        pairs = [pair for pair in pairs if pair[0] is not None]
        if not pairs:
            return [FaceTrack(detections) for detections in joined]
        _, i, j = min(pairs)
        joined[i] = sorted(joined[i] + joined.pop(j), key=lambda d: d.frame_index)


def _join_cost(a: Sequence[Detection], b: Sequence[Detection]) -> Optional[float]:
    """How far one face moved between two tracks' closest detections in time; None when they are not one face."""
    if {d.frame_index for d in a} & {d.frame_index for d in b}:
        return None
    _, first, second = min(((abs(x.frame_index - y.frame_index), x, y) for x in a for y in b), key=lambda pair: pair[0])
    return face_shift(first, second)


def _overlap_tracks(detections_by_frame: Sequence[Sequence[Detection]], min_iou: float) -> List[FaceTrack]:
    """Each face joins the track whose last box overlaps it most (at least `min_iou`), else starts one."""
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
    return tracks
