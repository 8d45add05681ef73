"""Which face tracks are people: the one rule that decides what the ingest keeps and what a verdict counts.

MTCNN takes a wheel, a pattern or a poster for a face now and then, at
confidences above 0.9, and a classifier of faces scores such a crop as it
likes (a non-face is out of its domain). A swapped face, on the other hand,
is found less often and less surely than the face it replaced: a rule on the
detector's confidence or on a track's length alone lets exactly the
manipulated faces through unjudged. So a track is a person when it is

- face-shaped: in at least `min_plausible_share` of its detections, the five
  landmarks lie as a face's do (two eyes side by side, the nose below them,
  the mouth corners below the nose, all inside the box, at a face's
  proportions): a wheel or a pattern has no eyes above a mouth;
- and not a passing face beside a person: a face-shaped track seen in fewer
  than `frames_needed` frames when another face-shaped track is seen in at
  least that many (a poster, a passer-by, a face-shaped flash) is reported,
  not counted.

A person's evidence is thin when it is seen in fewer than `frames_needed`
frames, or when its median detector confidence is under `min_confidence`
and it is seen in fewer than `steady_frame_share` of the frames (a steady
face in a poor video is solid evidence). Thin evidence still counts: the
verdict says so, and does not clear a file on it.

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


@dataclasses.dataclass
class People:
    """The people among a video's tracks (in the tracks' order), why each one's evidence is thin (None when it is
    not), and every other track with the reason it is not a person."""

    tracks: List[FaceTrack]
    thin: List[Optional[str]]
    others: List[Tuple[FaceTrack, str]]


@dataclasses.dataclass(frozen=True)
class PersonRule:
    """When a face track is a person, and when a person's evidence is thin; see the module's docstring."""

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
        """How many of `frames_sampled` frames a person must be seen in for solid evidence (never more than were
        sampled)."""
        share = math.ceil(self.min_frame_share * frames_sampled - 1e-9)
        return max(1, min(frames_sampled, max(self.min_frames, share)))

    def thin_evidence(self, track: FaceTrack, frames_sampled: int) -> Optional[str]:
        """Why a person's evidence is thin (few frames, low confidence), as a sentence a person can read; None
        when it is not."""
        seen, needed = len(track.detections), self.frames_needed(frames_sampled)
        reasons = []
        if seen < needed:
            reasons.append(f"{REASON_FEW_FRAMES}: seen in {seen} of {frames_sampled} sampled frames, under {needed}")
        confidence = float(np.median([d.confidence for d in track.detections]))
        if confidence < self.min_confidence and seen < self.steady_frame_share * frames_sampled:
            reasons.append(
                f"{REASON_LOW_CONFIDENCE}: median detector confidence {confidence:.3f}, under {self.min_confidence}"
            )
        return ", ".join(reasons) or None

    def split(self, tracks: Sequence[FaceTrack], frames_sampled: int) -> People:
        """The people of a video's tracks, and every other track with its reason."""
        needed = self.frames_needed(frames_sampled)
        shares = [face_shaped_share(track) for track in tracks]
        steady = [
            len(t.detections)
            for t, share in zip(tracks, shares, strict=True)
            if share >= self.min_plausible_share and len(t.detections) >= needed
        ]
        people = People([], [], [])
        for track, plausible in zip(tracks, shares, strict=True):
            seen = len(track.detections)
            if steady and seen < needed:
                reason = (
                    f"{REASON_FEW_FRAMES}: seen in {seen} of {frames_sampled} sampled frames, "
                    f"beside a person seen in {max(steady)}"
                )
                people.others.append((track, reason))
            elif plausible < self.min_plausible_share:
                reason = (
                    f"{REASON_NOT_FACE_SHAPED}: face-shaped landmarks in {plausible:.0%} of its detections, "
                    f"a person needs {self.min_plausible_share:.0%}"
                )
                people.others.append((track, reason))
            else:
                people.tracks.append(track)
                people.thin.append(self.thin_evidence(track, frames_sampled))
        return people


def face_shaped_share(track: FaceTrack) -> float:
    """The share of a track's detections whose landmarks lie as a face's do."""
    return float(np.mean([is_face_shaped(d) for d in track.detections]))


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
