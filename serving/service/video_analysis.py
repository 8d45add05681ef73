"""A video or image in, a verdict out: the ingest's own face path, then the model server in batches.

Frames are sampled, faces detected, tracked, kept and cropped by the same
code as the pipeline's ingest (`find_faces`), so serving sees exactly the
crops training saw, and only people decide (`persons.PersonRule`): every
other track is reported with the reason it did not. Face scores are turned
into one video score by a rule of `video_scores`, calibrated, and read
against the operating point that the model version carries
(`operating_point`): `fake`, `uncertain` or `real`; `uncertain` too when the
score rests on a person whose evidence is thin (seen in few frames, or
unsurely), unless the people seen well are fake on their own. A video
without any detection gets the verdict `no_face`, one whose every detection
is rejected `no_person`; neither gets a score.
"""

import base64
import dataclasses
import os
import queue
import time
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import cv2
import numpy as np

from deepfake_detection.evaluation import operating_point, video_scores
from deepfake_detection.evaluation.operating_point import OperatingPoint
from deepfake_detection.evaluation.person_maps import with_person_maps
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import margin_crop_box
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.sampling import SampledFrame
from deepfake_detection.ingest.videos import FacesFound, find_faces
from serving.service.media import KIND_VIDEO, decode_media

VERDICT_FAKE = operating_point.VERDICT_FAKE
VERDICT_UNCERTAIN = operating_point.VERDICT_UNCERTAIN
VERDICT_REAL = operating_point.VERDICT_REAL
VERDICT_NO_FACE = operating_point.VERDICT_NO_FACE
VERDICT_NO_PERSON = operating_point.VERDICT_NO_PERSON
POINT_FROM_MODEL = "model"
POINT_FROM_SETTINGS = "settings"


class FaceModel(Protocol):
    def predict(self, images: Sequence[bytes]):  # noqa: ANN201 - returns a clients.Prediction
        ...

    def explain(self, images: Sequence[bytes]):  # noqa: ANN201 - a clients.Prediction with heatmaps
        ...


@dataclasses.dataclass(frozen=True)
class FaceScore:
    frame_index: int
    timestamp: float
    track_id: int
    box: Sequence[int]
    confidence: float
    fake_probability: float
    thumbnail_jpeg_b64: Optional[str] = None
    # Asked for with `explain`: the margin crop box the model saw ([x, y, w, h] in frame pixels) and the map over
    # it of where the face looks manipulated (rows of cells in [0, 1], the top row first).
    crop_box: Optional[Sequence[int]] = None
    heatmap: Optional[List[List[float]]] = None


EXPLAIN_FIELDS = ("crop_box", "heatmap")
# Heatmap cells are rounded to this many decimals: finer than any overlay shows, and short in JSON.
HEATMAP_DECIMALS = 3


Progress = Callable[[str, float], None]
THUMBNAIL_SIZE = 96


def thumbnail(encoded_crop: bytes) -> str:
    """A small JPEG of a face crop, base64, for pages that show the faces."""
    image = cv2.imdecode(np.frombuffer(encoded_crop, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(image, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    return base64.b64encode(cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()).decode()


@dataclasses.dataclass(frozen=True)
class OtherTrack:
    """A track that did not decide the verdict (not a person), and why; never scored, so never shown as fake."""

    track_id: int
    frames: int
    first_frame_index: int
    box: Sequence[int]
    best_confidence: float
    reason: str


@dataclasses.dataclass
class Verdict:
    """One file's answer. `fake_probability` is calibrated on held-out videos; `raw_score` is the model's own
    video score; `threshold` and `real_threshold` are the operating point's, on the calibrated probability."""

    verdict: str
    fake_probability: Optional[float]
    raw_score: Optional[float]
    rule: str
    threshold: Optional[float]
    real_threshold: Optional[float]
    operating_point_source: Optional[str]
    explanation: str
    frames_analysed: int
    faces: List[FaceScore]
    other_tracks: List[OtherTrack]
    model_version: Optional[int]
    timings_s: Dict[str, float]

    def to_dict(self) -> dict:
        """The answer as JSON-ready values; a face carries `crop_box` and `heatmap` only when they were asked for."""
        answer = dataclasses.asdict(self)
        for face in answer["faces"]:
            for field in EXPLAIN_FIELDS:
                if face[field] is None:
                    del face[field]
        return answer


NO_POINT = (
    "This model version carries no fitted operating point (it was exported before they were), so no verdict "
    "is given: re-train it, or pass both thresholds explicitly."
)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What a video score rests on, beyond the score: why each thin person's evidence is thin, the score of the
    people with solid evidence alone (None without one), and why each rejected track is not a person."""

    thin: Sequence[str] = ()
    solid_score: Optional[float] = None
    rejected: Sequence[str] = ()


def decide(
    raw_score: Optional[float], point: Optional[OperatingPoint], evidence: Evidence = Evidence()
) -> Tuple[str, Optional[float], str]:
    """(verdict, calibrated probability, why) for a video score; `uncertain` without an operating point, and on
    thin evidence unless the people seen well are fake on their own; without a score, `no_person` when tracks
    were rejected, else `no_face`."""
    if raw_score is None and evidence.rejected:
        return VERDICT_NO_PERSON, None, operating_point.explain_no_person(evidence.rejected)
    if raw_score is None:
        return VERDICT_NO_FACE, None, operating_point.NO_FACE_EXPLANATION
    if point is None:
        return VERDICT_UNCERTAIN, None, NO_POINT
    probability = point.calibrate(raw_score)
    solid = evidence.solid_score
    solid_fake = solid is not None and point.verdict(point.calibrate(solid)) == VERDICT_FAKE
    if evidence.thin and not solid_fake:
        return VERDICT_UNCERTAIN, probability, operating_point.explain_thin(point, probability, evidence.thin)
    return point.verdict(probability), probability, operating_point.explain(point, probability)


class VideoAnalyzer:
    """Holds face detectors (one per core by default) and a model client; analyses videos and images.

    Face detection is the cost of an analysis; with one detector per core,
    concurrent requests detect in parallel, and more wait for a free one.
    """

    def __init__(
        self,
        model: FaceModel,
        ingest_config: Optional[IngestConfig] = None,
        rule: str = video_scores.RULE_MEAN,
        point: Optional[OperatingPoint] = None,
        batch_size: int = 32,
        detector: Optional[FaceDetector] = None,
        detectors: int = 0,
    ):
        self.model = model
        self.ingest_config = ingest_config or IngestConfig()
        self.rule = video_scores.check_rule(rule)
        self.point = point
        self.batch_size = batch_size
        count = 1 if detector else detectors or os.cpu_count() or 1
        self._detectors: queue.Queue[FaceDetector] = queue.Queue()
        for _ in range(count):
            self._detectors.put(detector or FaceDetector.from_config(self.ingest_config))

    def analyse_video(self, path: str) -> Verdict:
        """Raises VideoError (unreadable or rejected, with the reason) for a file that cannot be analysed."""
        started = time.perf_counter()
        frames = decode_media(path, KIND_VIDEO, self.ingest_config).frames
        return self.analyse_frames(frames, decode_s=time.perf_counter() - started)

    def analyse_frames(
        self,
        frames: Sequence[SampledFrame],
        decode_s: float = 0.0,
        include_thumbnails: bool = False,
        progress: Optional[Progress] = None,
        explain: bool = False,
    ) -> Verdict:
        """Detects, tracks, crops and scores the faces of already decoded frames (one frame for an image).

        With `explain`, faces are scored by the model's `explain` signature (a backward pass more per face)
        and each carries its crop box and the map of where it looks manipulated.
        """
        report = progress or (lambda stage, fraction: None)
        started = time.perf_counter()
        report("detecting faces", 0.0)
        detector = self._detectors.get()
        try:
            found = find_faces(frames, detector, self.ingest_config)
        finally:
            self._detectors.put(detector)
        detection_s = time.perf_counter() - started
        probabilities, heatmaps, version, model_point = self._score(found, report, explain)
        model_s = time.perf_counter() - started - detection_s
        crop_boxes = _crop_boxes(found, frames, self.ingest_config.margin) if explain else None
        faces = _face_scores(found, frames, probabilities, include_thumbnails, crop_boxes, heatmaps)
        by_track: Dict[int, List[float]] = {}
        for face in faces:
            by_track.setdefault(face.track_id, []).append(face.fake_probability)
        raw_score = video_scores.video_score(by_track, self.rule)
        point, source = (self.point, POINT_FROM_SETTINGS) if self.point else (model_point, POINT_FROM_MODEL)
        verdict, probability, why = decide(raw_score, point, _evidence(found, by_track, self.rule))
        timings = {"decode": decode_s, "detection": detection_s, "model": model_s}
        timings["total"] = decode_s + time.perf_counter() - started
        report("done", 1.0)
        return Verdict(
            verdict=verdict,
            fake_probability=probability,
            raw_score=raw_score,
            rule=self.rule,
            threshold=point.fake_threshold if point else None,
            real_threshold=point.real_threshold if point else None,
            operating_point_source=source if point else None,
            explanation=why,
            frames_analysed=len(frames),
            faces=faces,
            other_tracks=_other_tracks(found),
            model_version=version,
            timings_s={k: round(v, 4) for k, v in timings.items()},
        )

    def _score(self, found: FacesFound, report: Progress, explain: bool):  # noqa: ANN202 - see below
        """(probabilities, heatmaps or None, version, operating point): the people's faces scored in batches,
        with the version and operating point of the model that did; with `explain`, with a map per face."""
        crops = [crop for track in found.crops for crop in track]
        scores: List[np.ndarray] = []
        maps: List[np.ndarray] = []
        version, point = None, None
        call = self.model.explain if explain else self.model.predict
        for start in range(0, len(crops), self.batch_size):
            report("explaining faces" if explain else "scoring faces", start / len(crops))
            prediction = call(crops[start : start + self.batch_size])
            scores.append(np.asarray(prediction.probabilities, np.float64).ravel())
            if explain:
                maps.extend(np.asarray(prediction.heatmaps, np.float64))
            version, point = prediction.model_version, prediction.operating_point
        heatmaps = None
        if explain and maps:
            persons = [number for number, track in enumerate(found.crops) for _ in track]
            heatmaps = [np.round(m, HEATMAP_DECIMALS).tolist() for m in with_person_maps(np.stack(maps), persons)]
        return (np.concatenate(scores) if scores else np.zeros(0)), heatmaps, version, point


def _evidence(found: FacesFound, by_track: Dict[int, List[float]], rule: str) -> Evidence:
    """What `decide` needs beyond the score: the thin people's reasons, the score of the others alone (so a
    person seen well who is fake still makes the file fake), and the rejected tracks' reasons."""
    thin = {number: reason for number, reason in enumerate(found.thin) if reason}
    solid = {number: scores for number, scores in by_track.items() if number not in thin}
    return Evidence(
        thin=[f"person {number}: {reason}" for number, reason in thin.items()],
        solid_score=video_scores.video_score(solid, rule),
        rejected=[reason for _, reason in found.others],
    )


def _other_tracks(found: FacesFound) -> List[OtherTrack]:
    """The tracks that are not people, numbered after the people's, with the reason each did not decide."""
    return [
        OtherTrack(
            track_id=len(found.tracks) + number,
            frames=len(track.detections),
            first_frame_index=track.detections[0].frame_index,
            box=list(track.detections[0].box),
            best_confidence=round(track.best_confidence, 4),
            reason=reason,
        )
        for number, (track, reason) in enumerate(found.others)
    ]


def _crop_boxes(found: FacesFound, frames: Sequence[SampledFrame], margin: float) -> List[List[int]]:
    """The margin crop box of every person's face, in the order of `found.crops`: the region the model saw."""
    sizes = {f.index: f.image.shape[:2] for f in frames}
    return [
        list(margin_crop_box(d.box, sizes[d.frame_index][1], sizes[d.frame_index][0], margin))
        for track in found.tracks
        for d in track.detections
    ]


def _face_scores(
    found: FacesFound,
    frames: Sequence[SampledFrame],
    probabilities: np.ndarray,
    include_thumbnails: bool,
    crop_boxes: Optional[List[List[int]]] = None,
    heatmaps: Optional[List[List[List[float]]]] = None,
) -> List[FaceScore]:
    timestamps = {f.index: f.timestamp for f in frames}
    detections = [(track_id, d) for track_id, track in enumerate(found.tracks) for d in track.detections]
    crops = [crop for track in found.crops for crop in track]
    return [
        FaceScore(
            frame_index=d.frame_index,
            timestamp=round(timestamps[d.frame_index], 4),
            track_id=track_id,
            box=list(d.box),
            confidence=round(d.confidence, 4),
            fake_probability=float(p),
            thumbnail_jpeg_b64=thumbnail(crop) if include_thumbnails else None,
            crop_box=crop_boxes[number] if crop_boxes else None,
            heatmap=heatmaps[number] if heatmaps else None,
        )
        for number, ((track_id, d), p, crop) in enumerate(zip(detections, probabilities, crops, strict=True))
    ]
