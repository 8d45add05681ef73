"""Face boxes, crop geometry and face tracks across frames (which tracks are people: `persons`).

The geometry is pure (boxes in, boxes out) so it is tested without a
detector; the detector itself is `detector.FaceDetector`.
"""

import dataclasses
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]  # x, y, width, height in frame pixels


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
