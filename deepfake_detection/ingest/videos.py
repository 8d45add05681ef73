"""Ingest of one video: sample, detect, track, crop, and account for the outcome.

`ingest_video` never raises for a bad input: every video ends in exactly one
status (`ok`, `no_face`, `no_person`, `unreadable`, `rejected`) with a reason, so a run over
a folder of broken files completes and its report lists each of them.
"""

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import cv2

from deepfake_detection import contract
from deepfake_detection.ingest import examples as examples_lib
from deepfake_detection.ingest import input_description
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.faces import (
    Detection,
    FaceTrack,
    build_tracks,
    crop_face,
    crop_landmarks,
    margin_crop_box,
)
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import VideoRecord
from deepfake_detection.ingest.sampling import SampledFrame, VideoError, VideoInfo, sample_frames
from deepfake_detection.ingest.splits import assign_split


@dataclasses.dataclass
class VideoResult:
    """What one video produced: serialized examples and its report row."""

    split: str
    report: dict
    face_examples: List[bytes] = dataclasses.field(default_factory=list)
    clip_examples: List[bytes] = dataclasses.field(default_factory=list)


def report_row(record: VideoRecord, split: str, status: str, reason: Optional[str], **counts) -> dict:
    row = {
        "video": record.relative_path,
        "status": status,
        "reason": reason,
        "frames_sampled": 0,
        "faces": 0,
        "tracks": 0,
        "clips": 0,
        "video_id": record.video_id,
        "source_id": record.source_id,
        "label": record.label,
        "dataset": record.dataset,
        "manipulation": record.manipulation,
        "split": split,
    }
    row.update(counts)
    return row


Decoded = Tuple[VideoInfo, List[SampledFrame]]
Finish = Callable[[], VideoResult]


def ingest_video(record: VideoRecord, detector: FaceDetector, ingest_config: IngestConfig) -> VideoResult:
    """Turns one video into face and clip examples plus a report row; never raises for bad input."""
    return _detect_stage(record, detector, ingest_config, lambda: sample_frames(record.path, ingest_config))()


Reader = Callable[[str, IngestConfig], Decoded]


def ingest_videos(
    records: Sequence[VideoRecord],
    detector: FaceDetector,
    ingest_config: IngestConfig,
    read_timeout_s: float = contract.VIDEO_TIMEOUT_S,
    reader: Reader = sample_frames,
) -> Iterator[VideoResult]:
    """`ingest_video` over several videos in order, with both cores busy.

    Face detection (MTCNN, holding the GIL for much of its time) runs on this
    thread; a reader thread reads the next video's frames while a helper
    thread crops and encodes the previous video's faces, work that OpenCV
    does outside the GIL. At most three videos' frames are held at once.
    A video whose frames are not read within `read_timeout_s` (a hung
    decoder) is reported `unreadable` and the run goes on without it.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-helper") as helper:

        def read_ahead(position: int) -> Optional[Callable[[], Decoded]]:
            if position >= len(records) or records[position].reject_reason:
                return None
            return _read_in_background(reader, records[position].path, ingest_config, read_timeout_s)

        ahead, finishing = read_ahead(0), None
        for position, record in enumerate(records):
            current, ahead = ahead, read_ahead(position + 1)
            finish = _detect_stage(record, detector, ingest_config, current)
            if finishing is not None:
                yield finishing.result()
            finishing = helper.submit(finish)
        if finishing is not None:
            yield finishing.result()


def _read_in_background(
    reader: Reader, path: str, ingest_config: IngestConfig, timeout_s: float
) -> Callable[[], Decoded]:
    """Starts reading `path` on a daemon thread; returns the wait for its frames, at most `timeout_s` from now.

    A decoder that never returns cannot be stopped from Python: on its own
    daemon thread it holds only that thread, never the ingest or the exit
    of the process (a pool's threads would be joined at exit, forever).
    """
    future: Future = Future()
    deadline = time.monotonic() + timeout_s

    def read() -> None:
        try:
            future.set_result(reader(path, ingest_config))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread, which decides
            future.set_exception(e)

    threading.Thread(target=read, name="ingest-reader", daemon=True).start()

    def frames() -> Decoded:
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeoutError:
            reason = f"frames still not read after {timeout_s:g} s (a hung decoder?); left behind"
            raise VideoError(contract.STATUS_UNREADABLE, reason) from None

    return frames


def _detect_stage(
    record: VideoRecord, detector: FaceDetector, ingest_config: IngestConfig, read: Optional[Callable[[], Decoded]]
) -> Finish:
    """Reads (or takes the frames read ahead) and detects; returns the step that finishes the video's result.

    `read` is None only for a rejected record, which is never read.

    An error in either step ends in the video's report row, never raised.
    """
    started = time.monotonic()
    split = assign_split(record.source_id, ingest_config.split_buckets, record.split)

    def timed(result: VideoResult) -> VideoResult:
        result.report["seconds"] = round(time.monotonic() - started, 3)
        return result

    if record.reject_reason:
        rejected = VideoResult(split, report_row(record, split, contract.STATUS_REJECTED, record.reject_reason))
        return lambda: rejected
    try:
        info, frames = read()
        kept = detect_faces(frames, detector, ingest_config)
    except _INGEST_ERRORS as e:
        failed = timed(_failed(record, split, e))
        return lambda: failed

    def finish() -> VideoResult:
        try:
            return timed(_finish_video(record, split, info, frames, kept, ingest_config))
        except _INGEST_ERRORS as e:
            return timed(_failed(record, split, e))

    return finish


# What a bad input raises while it is read, detected or cropped; anything else is a bug and propagates.
_INGEST_ERRORS = (VideoError, cv2.error, MemoryError, OSError, ValueError)


def _failed(record: VideoRecord, split: str, error: Exception) -> VideoResult:
    """The report row of a video the ingest could not finish: its VideoError's status, else unreadable."""
    if isinstance(error, VideoError):
        return VideoResult(split, report_row(record, split, error.status, error.reason))
    logging.error("Ingest of %s failed", record.path, exc_info=error)
    reason = f"{type(error).__name__}: {error}"
    return VideoResult(split, report_row(record, split, contract.STATUS_UNREADABLE, reason))


# A track that is not a person, and why (`persons.PersonRule.why_not`).
OtherTrack = Tuple[FaceTrack, str]


@dataclasses.dataclass
class FacesFound:
    """The people of a run of frames: tracks (largest first), each track's encoded crops and crop landmarks;
    why each person's evidence is thin (None when it is not); and the tracks that are not people, with the
    reason."""

    tracks: List[FaceTrack]
    crops: List[List[bytes]]
    landmarks: List[List[List[float]]]
    detections_before_keep: int
    others: List[OtherTrack] = dataclasses.field(default_factory=list)
    thin: List[Optional[str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class KeptFaces:
    """The people a video keeps (and why each one's evidence is thin, or None), the tracks that are not people
    (with the reason), and how many faces were detected in all."""

    tracks: List[FaceTrack]
    detections_before_keep: int
    others: List[OtherTrack] = dataclasses.field(default_factory=list)
    thin: List[Optional[str]] = dataclasses.field(default_factory=list)


def detect_faces(frames: Sequence[SampledFrame], detector: FaceDetector, ingest_config: IngestConfig) -> KeptFaces:
    """Detection, tracks (one per face: `build_tracks`) and the person rule."""
    detections = detector.detect([f.image for f in frames], [f.index for f in frames])
    tracks = build_tracks(detections, ingest_config.track_iou)
    people = ingest_config.person_rule().split(tracks, len(frames))
    return KeptFaces(people.tracks, sum(len(d) for d in detections), people.others, people.thin)


def other_tracks_summary(others: Sequence[OtherTrack]) -> List[dict]:
    """The tracks that are not people, for a report: frames seen, best confidence and the reason."""
    return [
        {"frames": len(track.detections), "best_confidence": round(track.best_confidence, 4), "reason": reason}
        for track, reason in others
    ]


def no_person_status(found: FacesFound, frames_sampled: int) -> Tuple[str, str]:
    """(status, reason) of a video without a person: `no_face` when nothing was detected, else `no_person`
    (every detection is in a track that is not a person, listed in `other_tracks`)."""
    if not found.others:
        return contract.STATUS_NO_FACE, f"no face detected in {frames_sampled} sampled frames"
    reasons = sorted({reason.split(":")[0] for _, reason in found.others})
    return contract.STATUS_NO_PERSON, (
        f"{found.detections_before_keep} detections in {frames_sampled} sampled frames, in {len(found.others)} "
        f"tracks that are not people ({', '.join(reasons)}: see other_tracks)"
    )


def crop_faces(frames: Sequence[SampledFrame], kept: KeptFaces, ingest_config: IngestConfig) -> FacesFound:
    """Margin crops of the kept faces, encoded, with their landmarks in crop coordinates."""
    images = {f.index: f.image for f in frames}

    def crop(detection: Detection) -> Tuple[bytes, List[float]]:
        image = images[detection.frame_index]
        height, width = image.shape[:2]
        crop_box = margin_crop_box(detection.box, width, height, ingest_config.margin)
        pixels = crop_face(image, detection.box, ingest_config.margin, ingest_config.image_size)
        encoded = examples_lib.encode_image(pixels, ingest_config.image_format)
        return encoded, crop_landmarks(detection.landmarks, crop_box)

    cropped = [[crop(d) for d in track.detections] for track in kept.tracks]
    return FacesFound(
        kept.tracks,
        [[encoded for encoded, _ in track] for track in cropped],
        [[marks for _, marks in track] for track in cropped],
        kept.detections_before_keep,
        kept.others,
        kept.thin,
    )


def find_faces(frames: Sequence[SampledFrame], detector: FaceDetector, ingest_config: IngestConfig) -> FacesFound:
    """Detection, tracks, the keep rule and margin crops: the one face path of ingest and serving."""
    return crop_faces(frames, detect_faces(frames, detector, ingest_config), ingest_config)


def _finish_video(
    record: VideoRecord,
    split: str,
    info: VideoInfo,
    frames: Sequence[SampledFrame],
    kept: KeptFaces,
    ingest_config: IngestConfig,
) -> VideoResult:
    """Crops, examples and the report row of a video whose faces are found."""
    found = crop_faces(frames, kept, ingest_config)
    counts = {
        "frames_sampled": len(frames),
        "width": info.width,
        "height": info.height,
        "fps": round(info.fps, 3),
    }
    counts["other_tracks"] = other_tracks_summary(found.others)
    counts["thin_evidence"] = [reason for reason in found.thin if reason]
    if not found.tracks:
        status, reason = no_person_status(found, len(frames))
        return VideoResult(split, report_row(record, split, status, reason, **counts))

    timestamps = {f.index: f.timestamp for f in frames}
    images = {f.index: f.image for f in frames}
    video_look = input_description.video_look(info)
    result = VideoResult(split, {})
    for track_id, (track, crops, landmarks) in enumerate(zip(found.tracks, found.crops, found.landmarks, strict=True)):
        for detection, crop, marks in zip(track.detections, crops, landmarks, strict=True):
            timestamp = timestamps[detection.frame_index]
            look = {**video_look, **input_description.face_look(images[detection.frame_index], detection.box)}
            example = examples_lib.face_example(record, detection, track_id, timestamp, crop, marks, look)
            result.face_examples.append(example.SerializeToString())
        for window in examples_lib.clip_windows(track, ingest_config.clip_length):
            clip = examples_lib.clip_example(
                record,
                track_id,
                [track.detections[i] for i in window],
                [crops[i] for i in window],
                [landmarks[i] for i in window],
            )
            result.clip_examples.append(clip.SerializeToString())
    result.report = report_row(
        record,
        split,
        contract.STATUS_OK,
        None,
        faces=len(result.face_examples),
        tracks=len(found.tracks),
        clips=len(result.clip_examples),
        **counts,
    )
    return result
