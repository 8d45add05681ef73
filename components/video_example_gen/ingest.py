"""Ingest of one video: sample, detect, track, crop, and account for the outcome.

`ingest_video` never raises for a bad input: every video ends in exactly one
status (`ok`, `no_face`, `unreadable`, `rejected`) with a reason, so a run over
a folder of broken files completes and its report lists each of them.
"""

import dataclasses
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import cv2

from components.video_example_gen import examples as examples_lib
from components.video_example_gen.detector import FaceDetector
from components.video_example_gen.faces import (
    Detection,
    FaceTrack,
    build_tracks,
    crop_face,
    crop_landmarks,
    keep_tracks,
    margin_crop_box,
)
from components.video_example_gen.ingest_config import IngestConfig
from components.video_example_gen.readers import VideoRecord
from components.video_example_gen.sampling import SampledFrame, VideoError, VideoInfo, sample_frames
from components.video_example_gen.splits import assign_split
from pipeline import config


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


def ingest_video(
    record: VideoRecord,
    detector: FaceDetector,
    ingest_config: IngestConfig,
    decoded: Optional[Callable[[], Decoded]] = None,
) -> VideoResult:
    """Turns one video into face and clip examples plus a report row; never raises for bad input.

    `decoded` hands over sampled frames read ahead (`ingest_videos`); it
    raises the reading's error, which ends in the report like any other.
    """
    started = time.monotonic()
    split = assign_split(record.source_id, ingest_config.split_buckets, record.split)
    if record.reject_reason:
        return VideoResult(split, report_row(record, split, config.STATUS_REJECTED, record.reject_reason))
    read = decoded or (lambda: sample_frames(record.path, ingest_config))
    try:
        result = _ingest_readable_video(record, split, read(), detector, ingest_config)
    except VideoError as e:
        result = VideoResult(split, report_row(record, split, e.status, e.reason))
    except (cv2.error, MemoryError, OSError, ValueError) as e:
        logging.exception("Ingest of %s failed", record.path)
        result = VideoResult(split, report_row(record, split, config.STATUS_UNREADABLE, f"{type(e).__name__}: {e}"))
    result.report["seconds"] = round(time.monotonic() - started, 3)
    return result


def ingest_videos(
    records: Sequence[VideoRecord], detector: FaceDetector, ingest_config: IngestConfig
) -> Iterator[VideoResult]:
    """`ingest_video` over several videos, reading the next one's frames while this one's faces are detected.

    Decoding releases the GIL, so the read-ahead runs on the second core while
    MTCNN works on the first; one video ahead bounds the frames held to two
    videos' worth.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead") as reader:

        def read_ahead(position: int) -> Optional[Future]:
            if position >= len(records) or records[position].reject_reason:
                return None
            return reader.submit(sample_frames, records[position].path, ingest_config)

        ahead = read_ahead(0)
        for position, record in enumerate(records):
            current, ahead = ahead, read_ahead(position + 1)
            yield ingest_video(record, detector, ingest_config, current.result if current else None)


@dataclasses.dataclass
class FacesFound:
    """The kept faces of a run of frames: tracks (largest first), each track's encoded crops and crop landmarks."""

    tracks: List[FaceTrack]
    crops: List[List[bytes]]
    landmarks: List[List[List[float]]]
    detections_before_keep: int


def find_faces(frames: Sequence[SampledFrame], detector: FaceDetector, ingest_config: IngestConfig) -> FacesFound:
    """Detection, tracks, the keep rule and margin crops: the one face path of ingest and serving."""
    detections = detector.detect([f.image for f in frames], [f.index for f in frames])
    tracks = build_tracks(detections, ingest_config.track_iou)
    kept = keep_tracks(tracks, ingest_config.min_confidence_multi, min(ingest_config.min_track_faces, len(frames)))
    images = {f.index: f.image for f in frames}

    def crop(detection: Detection) -> Tuple[bytes, List[float]]:
        image = images[detection.frame_index]
        height, width = image.shape[:2]
        crop_box = margin_crop_box(detection.box, width, height, ingest_config.margin)
        pixels = crop_face(image, detection.box, ingest_config.margin, ingest_config.image_size)
        encoded = examples_lib.encode_image(pixels, ingest_config.image_format)
        return encoded, crop_landmarks(detection.landmarks, crop_box)

    cropped = [[crop(d) for d in track.detections] for track in kept]
    return FacesFound(
        kept,
        [[encoded for encoded, _ in track] for track in cropped],
        [[marks for _, marks in track] for track in cropped],
        sum(len(d) for d in detections),
    )


def _ingest_readable_video(
    record: VideoRecord, split: str, decoded: Decoded, detector: FaceDetector, ingest_config: IngestConfig
) -> VideoResult:
    info, frames = decoded
    found = find_faces(frames, detector, ingest_config)
    counts = {
        "frames_sampled": len(frames),
        "width": info.width,
        "height": info.height,
        "fps": round(info.fps, 3),
    }
    if not found.tracks:
        before = found.detections_before_keep
        reason = f"no face kept in {len(frames)} sampled frames ({before} detections before the keep rule)"
        return VideoResult(split, report_row(record, split, config.STATUS_NO_FACE, reason, **counts))

    timestamps = {f.index: f.timestamp for f in frames}
    result = VideoResult(split, {})
    for track_id, (track, crops, landmarks) in enumerate(zip(found.tracks, found.crops, found.landmarks, strict=True)):
        for detection, crop, marks in zip(track.detections, crops, landmarks, strict=True):
            timestamp = timestamps[detection.frame_index]
            example = examples_lib.face_example(record, detection, track_id, timestamp, crop, marks)
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
        config.STATUS_OK,
        None,
        faces=len(result.face_examples),
        tracks=len(found.tracks),
        clips=len(result.clip_examples),
        **counts,
    )
    return result
