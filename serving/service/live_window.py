"""A rolling verdict over the last frames of a live source: what `live --local` and the service's `/v1/live`
route share (the route may not import the command line's modules, so both import this one).

Consecutive windows share all but their newest frame: `RememberingDetector` detects each frame once and
`RememberingModel` scores each face crop once, so an update costs about one frame's detection and model call.
`window_update` is one update in the documented JSON shape: `{"media_time_s", "latency_s", "verdict",
"fake_probability", "persons": [{"track_id", "fake_probability", "tier", "box"}]}`, `box` being the person's face
`[x, y, w, h]` in the newest frame of the window where it was seen (frame pixels), for drawing over the video.
"""

import collections
import time
from typing import Dict, List, Optional, Sequence

from deepfake_detection.evaluation import video_scores
from serving.client.tf_serving import Prediction
from serving.service.video_analysis import VideoAnalyzer, decide


class RememberingDetector:
    """A face detector that detects each frame once: consecutive windows share all but their newest frame, so
    an update runs the detector on that frame alone and takes the others' faces from memory (frames that left
    the window are forgotten). Tracks, the person rule and crops still run over the whole window."""

    def __init__(self, detector):  # noqa: ANN001 - a FaceDetector
        self.detector = detector
        self.faces: Dict[int, list] = {}

    def detect(self, frames: Sequence, frame_indices: Sequence[int]) -> List[list]:
        new = [position for position, index in enumerate(frame_indices) if index not in self.faces]
        found = self.detector.detect([frames[p] for p in new], [frame_indices[p] for p in new])
        for position, faces in zip(new, found, strict=True):
            self.faces[frame_indices[position]] = faces
        self.faces = {index: self.faces[index] for index in frame_indices}
        return [self.faces[index] for index in frame_indices]


class RememberingModel:
    """A face model that scores each crop once: the faces of the frames consecutive windows share are the same
    crops (same detections, same bytes), so only the newest frame's faces reach the model. The model is
    deterministic, so a remembered score is the score it would give again."""

    def __init__(self, model, remembered: int = 256):  # noqa: ANN001 - an InProcessModel, EdgeModel or client
        self.model, self.remembered = model, remembered
        self.scores: Dict[bytes, float] = collections.OrderedDict()
        self.version, self.point = None, None

    def predict(self, images: Sequence[bytes]) -> Prediction:
        import numpy as np

        new = list(dict.fromkeys(image for image in images if image not in self.scores))
        if new:
            prediction = self.model.predict(new)
            self.version, self.point = prediction.model_version, prediction.operating_point
            self.scores.update(zip(new, (float(p) for p in prediction.probabilities), strict=True))
        for image in images:
            self.scores.move_to_end(image)
        while len(self.scores) > self.remembered:
            self.scores.popitem(last=False)
        return Prediction(np.array([self.scores[image] for image in images]), self.version, self.point)

    def explain(self, images: Sequence[bytes]) -> Prediction:
        return self.model.explain(images)


def remembering_analyzer(analyzer: VideoAnalyzer, detector) -> VideoAnalyzer:  # noqa: ANN001 - a FaceDetector
    """An analyzer with `analyzer`'s model, settings and point that detects each frame and scores each face
    once: one per live source, since what it remembers belongs to that source's frames."""
    return VideoAnalyzer(
        RememberingModel(analyzer.model),
        analyzer.ingest_config,
        analyzer.rule,
        analyzer.point,
        analyzer.batch_size,
        detector=RememberingDetector(detector),
    )


def person_rows(verdict, point, rule: str) -> List[dict]:  # noqa: ANN001 - a Verdict, an OperatingPoint
    """Each person of a window's verdict: its calibrated P(fake), tier at the version's point, newest box."""
    scores: Dict[int, List[float]] = collections.defaultdict(list)
    boxes: Dict[int, List[int]] = {}
    for face in sorted(verdict.faces, key=lambda f: f.frame_index):
        scores[face.track_id].append(face.fake_probability)
        boxes[face.track_id] = [int(v) for v in face.box]
    rows = []
    for track_id, values in sorted(scores.items()):
        tier, probability, _ = decide(video_scores.aggregate(values, rule), point)
        rows.append(
            {"track_id": track_id, "fake_probability": rounded(probability), "tier": tier, "box": boxes[track_id]}
        )
    return rows


def rounded(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 4)


def window_update(analyzer: VideoAnalyzer, frames: Sequence, newest_at: float, point=None) -> dict:  # noqa: ANN001
    """The verdict of `frames` (SampledFrames, oldest first) as one update; persons are read at the analyzer's
    point (a hand-set `--threshold`), else at `point`, else at the one the model's answer named (a
    `RememberingModel`'s); `latency_s` runs from `newest_at` (time.monotonic() when the newest frame was read)
    to now."""
    verdict = analyzer.analyse_frames(list(frames))
    return {
        "media_time_s": round(frames[-1].timestamp, 3),
        "latency_s": round(time.monotonic() - newest_at, 4),
        "verdict": verdict.verdict,
        "fake_probability": rounded(verdict.fake_probability),
        "persons": person_rows(
            verdict, analyzer.point or point or getattr(analyzer.model, "point", None), analyzer.rule
        ),
    }
