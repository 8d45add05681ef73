"""Frame sampling in one sequential decoding pass, and the checks before it.

Seeking with `CAP_PROP_POS_FRAMES` is 5-15x slower than decoding forward and
lands on wrong frames with B-frames, so frames are read in order: `grab()` on
every frame, `retrieve()` only on the wanted ones. The container's frame count
can be wrong or 0, so the reader counts what it decodes.
"""

import dataclasses
import math
import os
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from deepfake_detection import contract
from deepfake_detection.ingest.ingest_config import SAMPLING_PER_SECOND, SAMPLING_UNIFORM, IngestConfig


class VideoError(Exception):
    """A video that cannot be ingested; `status` says whether it is unreadable or rejected.

    `limit` names the IngestConfig limit a rejected video broke (`max_file_bytes`,
    `max_pixels`, `max_duration_s`), so a service can answer with it.
    """

    def __init__(self, status: str, reason: str, limit: Optional[str] = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.limit = limit


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What the container declares about a video, before decoding."""

    width: int
    height: int
    fps: float
    declared_frames: int
    codec: str = contract.UNKNOWN

    @property
    def declared_duration_s(self) -> float:
        return self.declared_frames / self.fps if self.fps > 0 else 0.0


@dataclasses.dataclass
class SampledFrame:
    index: int
    timestamp: float
    image: np.ndarray


def plan_frame_indices(sampling: str, frames_per_video: int, frame_count: int, fps: float) -> List[int]:
    """Frame indices to keep, in increasing order.

    `uniform`: `frames_per_video` indices spread evenly over the video
    (`linspace`, as the DFDC winners did). `per_second`: frame i is kept when
    `i % floor(fps) == 0`, the design document's one frame per second.
    """
    if frame_count <= 0:
        return []
    if sampling == SAMPLING_UNIFORM:
        count = min(frames_per_video, frame_count)
        return sorted({int(round(i)) for i in np.linspace(0, frame_count - 1, count)})
    if sampling == SAMPLING_PER_SECOND:
        step = max(1, int(math.floor(fps))) if fps > 0 else 1
        return list(range(0, frame_count, step))
    raise ValueError(f"Unknown sampling mode {sampling!r}")


def detection_scale(width: int) -> float:
    """The design's width-based rescale before face detection.

    Under 300 px wide x2, 1000-1900 px x0.5, over 1900 px x0.33, else unchanged:
    MTCNN finds small faces poorly and large frames cost time without helping.
    """
    if width < 300:
        return 2.0
    if 1000 <= width <= 1900:
        return 0.5
    if width > 1900:
        return 0.33
    return 1.0


def check_file(path: str, ingest_config: IngestConfig) -> None:
    """Raises `VideoError` for a file that is missing, empty or over the size limit."""
    if not os.path.isfile(path):
        raise VideoError(contract.STATUS_UNREADABLE, "file does not exist")
    size = os.path.getsize(path)
    if size == 0:
        raise VideoError(contract.STATUS_UNREADABLE, "empty file (0 bytes)")
    if size > ingest_config.max_file_bytes:
        raise VideoError(
            contract.STATUS_REJECTED,
            f"file size {size} bytes is over the limit of {ingest_config.max_file_bytes} bytes",
            "max_file_bytes",
        )


def open_video(path: str) -> Tuple[cv2.VideoCapture, VideoInfo]:
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    if not capture.isOpened():
        capture.release()
        raise VideoError(contract.STATUS_UNREADABLE, "not a readable video container (OpenCV/FFmpeg cannot open it)")
    info = VideoInfo(
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        fps=float(capture.get(cv2.CAP_PROP_FPS) or 0.0),
        declared_frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
        codec=fourcc_name(capture.get(cv2.CAP_PROP_FOURCC)),
    )
    return capture, info


def fourcc_name(fourcc: float) -> str:
    """The container's four-character codec code (`avc1`, `hev1`, `vp09`), lower case; unknown when absent."""
    code = int(fourcc)
    name = "".join(chr((code >> shift) & 0xFF) for shift in (0, 8, 16, 24)).strip("\x00 ").lower()
    return name if name.isprintable() and name else contract.UNKNOWN


def check_limits(info: VideoInfo, ingest_config: IngestConfig) -> None:
    """Raises `VideoError(rejected)` when the declared resolution or duration is over the limits."""
    pixels = info.width * info.height
    if pixels > ingest_config.max_pixels:
        raise VideoError(
            contract.STATUS_REJECTED,
            f"resolution {info.width}x{info.height} is over the limit of {ingest_config.max_pixels} pixels",
            "max_pixels",
        )
    if info.declared_duration_s > ingest_config.max_duration_s:
        raise VideoError(
            contract.STATUS_REJECTED,
            f"duration {info.declared_duration_s:.1f}s is over the limit of {ingest_config.max_duration_s:.1f}s",
            "max_duration_s",
        )


def count_frames(path: str, max_frames: int) -> int:
    """Counts decodable frames with `grab()` alone (no colour conversion), stopping at `max_frames`."""
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    count = 0
    try:
        while count <= max_frames and capture.grab():
            count += 1
    finally:
        capture.release()
    return count


def read_planned_frames(capture: cv2.VideoCapture, wanted: Sequence[int], fps: float) -> Tuple[int, List[SampledFrame]]:
    """Walks the video once up to the last wanted frame; returns (frames decoded, sampled frames)."""
    wanted_set = set(wanted)
    last_wanted = wanted[-1] if wanted else -1
    frames: List[SampledFrame] = []
    decoded = 0
    while decoded <= last_wanted and capture.grab():
        if decoded in wanted_set:
            ok, image = capture.retrieve()
            if ok and image is not None:
                frames.append(SampledFrame(index=decoded, timestamp=decoded / fps if fps > 0 else 0.0, image=image))
        decoded += 1
    return decoded, frames


def sample_frames(path: str, ingest_config: IngestConfig) -> Tuple[VideoInfo, List[SampledFrame]]:
    """Checks a video and returns the sampled frames (BGR, full resolution).

    Raises `VideoError` for an empty, undecodable, truncated or over-limit video.
    """
    check_file(path, ingest_config)
    capture, info = open_video(path)
    try:
        check_limits(info, ingest_config)
        frame_count = info.declared_frames
        if frame_count <= 0:
            max_frames = int(ingest_config.max_duration_s * (info.fps or 30.0))
            frame_count = count_frames(path, max_frames)
            if frame_count > max_frames:
                raise VideoError(
                    contract.STATUS_REJECTED,
                    f"more than {max_frames} frames: over the duration limit of {ingest_config.max_duration_s:.1f}s",
                    "max_duration_s",
                )
        wanted = plan_frame_indices(ingest_config.sampling, ingest_config.frames_per_video, frame_count, info.fps)
        decoded, frames = read_planned_frames(capture, wanted, info.fps)
    finally:
        capture.release()
    if decoded == 0:
        raise VideoError(contract.STATUS_UNREADABLE, "no decodable video frame (audio only, or an unsupported codec)")
    if wanted and decoded < wanted[-1] + 1 and decoded < frame_count // 2:
        raise VideoError(
            contract.STATUS_UNREADABLE,
            f"truncated: decoding stopped after {decoded} of {frame_count} declared frames",
        )
    if not frames:
        raise VideoError(contract.STATUS_UNREADABLE, f"none of the {len(wanted)} planned frames could be decoded")
    return info, frames
