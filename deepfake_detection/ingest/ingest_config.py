"""Settings of the video-to-face ingest, validated where they enter.

The executor receives them as one JSON execution property, the standalone
`pipeline_runner.py ingest` command from flags; both build an `IngestConfig`
so the two paths cannot disagree.
"""

import dataclasses
import json
from typing import Any, Dict, Mapping

from deepfake_detection import contract
from deepfake_detection.ingest.persons import PersonRule

SAMPLING_UNIFORM = "uniform"
SAMPLING_PER_SECOND = "per_second"
SAMPLING_MODES = (SAMPLING_UNIFORM, SAMPLING_PER_SECOND)
IMAGE_FORMATS = ("png", "jpeg")


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """How videos are sampled, which faces are kept and what is written.

    Defaults follow the design documents (30 % margin, faces confident above
    0.95) and the strongest DFDC entries (32 frames spread evenly over the
    video). Only people are kept: tracks that pass `person_rule()`
    (`persons.PersonRule`), the same rule that decides which tracks a
    served verdict counts. Faces are detected in full on every
    `detect_every`-th sampled frame, at the scale that makes the smallest face
    `detection_face_px` wide, and followed in the frames between
    (`detector.FaceDetector`); `detect_every=1, detection_face_px=0` detects
    every sampled frame at the width-based scale.
    """

    sampling: str = SAMPLING_UNIFORM
    frames_per_video: int = 32
    image_size: int = 256
    image_format: str = "png"
    margin: float = 0.3
    min_person_confidence: float = 0.95
    min_track_faces: int = 3
    min_person_frame_share: float = 0.25
    min_detection_confidence: float = 0.9
    track_iou: float = 0.3
    detection_batch_size: int = 8
    detect_every: int = 4
    detection_face_px: int = 48
    clip_length: int = 8
    max_file_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    split_buckets: Mapping[str, int] = dataclasses.field(default_factory=lambda: dict(contract.DEFAULT_SPLIT_BUCKETS))

    def __post_init__(self) -> None:
        _require(self.sampling in SAMPLING_MODES, "sampling", self.sampling, f"one of {SAMPLING_MODES}")
        _require(self.frames_per_video >= 1, "frames_per_video", self.frames_per_video, ">= 1")
        _require(16 <= self.image_size <= 1024, "image_size", self.image_size, "between 16 and 1024")
        _require(self.image_format in IMAGE_FORMATS, "image_format", self.image_format, f"one of {IMAGE_FORMATS}")
        _require(0.0 <= self.margin <= 1.0, "margin", self.margin, "between 0 and 1")
        for name in ("min_person_confidence", "min_person_frame_share", "min_detection_confidence", "track_iou"):
            value = getattr(self, name)
            _require(0.0 <= value <= 1.0, name, value, "between 0 and 1")
        _require(self.min_track_faces >= 1, "min_track_faces", self.min_track_faces, ">= 1")
        _require(self.detection_batch_size >= 1, "detection_batch_size", self.detection_batch_size, ">= 1")
        _require(self.detect_every >= 1, "detect_every", self.detect_every, ">= 1")
        _require(
            self.detection_face_px == 0 or self.detection_face_px >= 40,
            "detection_face_px",
            self.detection_face_px,
            "0 (the width-based scale) or at least 40 (twice MTCNN's smallest face)",
        )
        _require(self.clip_length >= 2, "clip_length", self.clip_length, ">= 2")
        _require(self.max_file_bytes > 0, "max_file_bytes", self.max_file_bytes, "> 0")
        _require(self.max_duration_s > 0, "max_duration_s", self.max_duration_s, "> 0")
        _require(self.max_pixels > 0, "max_pixels", self.max_pixels, "> 0")
        unknown = set(self.split_buckets) - set(contract.SPLIT_NAMES)
        _require(not unknown, "split_buckets", dict(self.split_buckets), f"keys among {contract.SPLIT_NAMES}")
        _require(
            all(v >= 0 for v in self.split_buckets.values()) and sum(self.split_buckets.values()) > 0,
            "split_buckets",
            dict(self.split_buckets),
            "non-negative bucket counts with a positive total",
        )

    def person_rule(self) -> PersonRule:
        return PersonRule(
            min_frame_share=self.min_person_frame_share,
            min_frames=self.min_track_faces,
            min_confidence=self.min_person_confidence,
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "IngestConfig":
        return cls.from_dict(json.loads(text) if text else {})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "IngestConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown ingest setting(s) {unknown}; known settings are {sorted(known)}")
        return cls(**dict(values))


def _require(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ValueError(f"Invalid ingest setting {name}={value!r}: expected {expected}")


def parse_split_buckets(text: str) -> Dict[str, int]:
    """Parses `train:8,eval:1,test:1` as given on a command line."""
    buckets = {}
    for part in text.split(","):
        name, _, count = part.partition(":")
        if not count.strip().isdigit():
            raise ValueError(f"Invalid split bucket {part!r}: expected NAME:COUNT, e.g. train:8")
        buckets[name.strip()] = int(count)
    return buckets
