"""Which face tracks are people: the one rule that decides what the ingest keeps and what a verdict counts.

MTCNN takes a wheel, a pattern or a poster for a face now and then, at
confidences above 0.9, and a classifier of faces scores such a crop as it
likes (a non-face is out of its domain). A track therefore counts as a
person only when it is

- persistent: seen in at least `min_frame_share` of the sampled frames (and
  at least `min_frames`), where a person on camera is seen in most and a
  background false positive in a few;
- face-shaped: in at least `min_plausible_share` of its detections, the five
  landmarks lie as a face's do (two eyes side by side, the nose below them,
  the mouth corners below the nose, all inside the box, at a face's
  proportions);
- confidently detected: its median detector confidence is at least
  `min_confidence`, unless it is seen in at least `steady_frame_share` of the
  frames, which a passing artefact never is.

The ingest keeps only people (so the examples, and the Evaluator's video
metrics over them, hold only people), and serving lets only people decide a
verdict while it reports every other track with the reason it did not.
"""

import dataclasses
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from deepfake_detection.face_geometry import face_axes
from deepfake_detection.ingest.faces import Detection, FaceTrack

REASON_FEW_FRAMES = "few_frames"
REASON_NOT_FACE_SHAPED = "not_face_shaped"
REASON_LOW_CONFIDENCE = "low_confidence"

# A face's proportions, in its own frame (eye distance across, eye-to-mouth down), loose enough for turned,
# tilted and small faces and for MTCNN's landmark noise; measured in docs/verdicts.md.
_EYE_DISTANCE_TO_BOX_WIDTH = (0.12, 0.8)
_MOUTH_DROP_TO_EYE_DISTANCE = (0.45, 2.5)
_NOSE_DROP_SHARE = (0.05, 1.0)
_MOUTH_WIDTH_TO_EYE_DISTANCE = (0.3, 1.8)
_MAX_ROLL_DEGREES = 60.0
_BOX_SLACK = 0.1


@dataclasses.dataclass(frozen=True)
class PersonRule:
    """When a face track is a person; see the module's docstring for why each part."""

    min_frame_share: float = 0.25
    min_frames: int = 3
    min_plausible_share: float = 0.5
    min_confidence: float = 0.95
    steady_frame_share: float = 0.4

    def __post_init__(self) -> None:
        for name in ("min_frame_share", "min_plausible_share", "min_confidence", "steady_frame_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"Invalid person rule {name}={value!r}: expected a value between 0 and 1")
        if self.min_frames < 1:
            raise ValueError(f"Invalid person rule min_frames={self.min_frames!r}: expected >= 1")

    def frames_needed(self, frames_sampled: int) -> int:
        """How many of `frames_sampled` frames a person must be seen in (never more than were sampled)."""
        share = math.ceil(self.min_frame_share * frames_sampled - 1e-9)
        return max(1, min(frames_sampled, max(self.min_frames, share)))

    def why_not(self, track: FaceTrack, frames_sampled: int) -> Optional[str]:
        """None when `track` is a person, else the reason, as a short sentence a person can read."""
        seen, needed = len(track.detections), self.frames_needed(frames_sampled)
        if seen < needed:
            return f"{REASON_FEW_FRAMES}: seen in {seen} of {frames_sampled} sampled frames, a person needs {needed}"
        plausible = float(np.mean([is_face_shaped(d) for d in track.detections]))
        if plausible < self.min_plausible_share:
            return (
                f"{REASON_NOT_FACE_SHAPED}: face-shaped landmarks in {plausible:.0%} of its detections, "
                f"a person needs {self.min_plausible_share:.0%}"
            )
        confidence = float(np.median([d.confidence for d in track.detections]))
        steady = seen >= self.steady_frame_share * frames_sampled
        if confidence < self.min_confidence and not steady:
            return (
                f"{REASON_LOW_CONFIDENCE}: median detector confidence {confidence:.3f} under {self.min_confidence} "
                f"in {seen} of {frames_sampled} frames"
            )
        return None

    def split(
        self, tracks: Sequence[FaceTrack], frames_sampled: int
    ) -> Tuple[List[FaceTrack], List[Tuple[FaceTrack, str]]]:
        """(the people, in the tracks' order; every other track with its reason)."""
        people: List[FaceTrack] = []
        others: List[Tuple[FaceTrack, str]] = []
        for track in tracks:
            reason = self.why_not(track, frames_sampled)
            if reason is None:
                people.append(track)
            else:
                others.append((track, reason))
        return people, others


def is_face_shaped(detection: Detection) -> bool:
    """Whether the five landmarks of one detection lie as a face's do; False without landmarks."""
    if len(detection.landmarks) != 10:
        return False
    points = np.asarray(detection.landmarks, np.float64).reshape(5, 2)
    x, y, width, height = detection.box
    slack_x, slack_y = _BOX_SLACK * width, _BOX_SLACK * height
    inside = (
        (points[:, 0] >= x - slack_x).all()
        and (points[:, 0] <= x + width + slack_x).all()
        and (points[:, 1] >= y - slack_y).all()
        and (points[:, 1] <= y + height + slack_y).all()
    )
    if not inside or width <= 0:
        return False
    across, down, eye_distance, _ = face_axes(points)
    eyes_mid = points[:2].mean(axis=0)
    mouth_mid = points[3:].mean(axis=0)
    mouth_drop = float((mouth_mid - eyes_mid) @ down)
    nose_drop = float((points[2] - eyes_mid) @ down)
    mouth_width = float(np.hypot(*(points[4] - points[3])))
    roll = abs(math.degrees(math.atan2(across[1], across[0])))
    return (
        _within(eye_distance / width, _EYE_DISTANCE_TO_BOX_WIDTH)
        and _within(mouth_drop / eye_distance, _MOUTH_DROP_TO_EYE_DISTANCE)
        and mouth_drop > 0
        and _within(nose_drop / mouth_drop, _NOSE_DROP_SHARE)
        and _within(mouth_width / eye_distance, _MOUTH_WIDTH_TO_EYE_DISTANCE)
        and roll <= _MAX_ROLL_DEGREES
    )


def _within(value: float, bounds: Tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]
