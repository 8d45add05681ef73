"""Uploaded media: what kind it is, and decoding it in an isolated process under a time limit.

A malformed file can hang or crash a decoder (FFmpeg, libjpeg, libwebp): the
service decodes each upload in a child process of its own, forked by
`serving.service.decode_worker` (OpenCV, numpy and the ingest's sampling, no
TensorFlow), waits at most `timeout_s`, and kills it past that; a crash or a
timeout costs that one upload an error, never the service. The media only
ever lives in memory and, for the decoder, in a private file on a RAM-backed
folder that is removed as soon as the decode ends.
"""

import dataclasses
import os
import pickle
import queue
import re
import subprocess
import sys
import tempfile
from typing import Callable, List, Optional, Tuple

import numpy as np

from deepfake_detection import contract
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.sampling import SampledFrame, VideoError
from serving.protocol import image_header

KIND_IMAGE = "image"
KIND_VIDEO = "video"
IMAGE_TYPES = ("jpeg", "png", "webp")
VIDEO_TYPES = ("mp4", "mov", "webm", "mkv", "avi")
RAM_FOLDER = "/dev/shm"


class MediaError(Exception):
    """An upload that cannot be analysed: `kind` says why (for metrics), `status` the HTTP code, `limit` which limit."""

    def __init__(self, kind: str, status: int, message: str, limit: Optional[str] = None):
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.message = message
        self.limit = limit


def sniff(data: bytes) -> Optional[Tuple[str, str]]:
    """(kind, format) from the file's first bytes, whatever its name says; None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return KIND_IMAGE, "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return KIND_IMAGE, "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return KIND_IMAGE, "webp"
    if data[:4] == b"RIFF" and data[8:12] == b"AVI ":
        return KIND_VIDEO, "avi"
    if data[4:8] == b"ftyp":
        return KIND_VIDEO, "mov" if data[8:10] == b"qt" else "mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return KIND_VIDEO, "webm" if b"webm" in data[:64] else "mkv"
    return None


def classify(data: bytes) -> Tuple[str, str]:
    """(kind, format) of an upload; MediaError 415 for an unsupported type, 422 for an empty file."""
    if not data:
        raise MediaError("empty", 422, "empty file (0 bytes)")
    found = sniff(data)
    if found is None:
        supported = ", ".join(IMAGE_TYPES + VIDEO_TYPES)
        raise MediaError("media_type", 415, f"unsupported media type: not one of {supported} (by content)")
    return found


def check_declared_pixels(data: bytes, media_format: str, max_pixels: int) -> None:
    """Refuses an image whose header declares more than `max_pixels` (MediaError 422), before any decoder runs.

    The decode child checks the size only after decoding, by which time a
    small PNG declaring 30000 x 30000 pixels has cost gigabytes and seconds;
    the header costs microseconds. An image without a readable header is
    refused too, so nothing reaches the decoder unmeasured.
    """
    try:
        size = image_header.declared_size(data, [media_format.upper()])
    except image_header.DeclaredTooLargeError as e:
        message = f"the image declares {e.pixels} pixels, over the limit of {max_pixels}"
        raise MediaError("limit", 422, message, "max_pixels") from None
    if size is None:
        raise MediaError("undecodable", 422, f"no readable {media_format} header")
    width, height = size
    if width * height > max_pixels:
        message = f"resolution {width}x{height} (declared) is over the limit of {max_pixels} pixels"
        raise MediaError("limit", 422, message, "max_pixels")


# An absolute path of two or more parts, with any `:line` after it: a decoder's source file or a temporary file.
_PATH = re.compile(r"(?<![\w.])/(?:[\w.+-]+/)+[\w.+-]*(?::\d+)*:?")


def public_message(text: str) -> str:
    """`text` without file system paths: OpenCV and FFmpeg name their own source files and the service's
    temporary files in their errors, which tell a client nothing and tell an attacker the layout."""
    return re.sub(r"\s{2,}", " ", _PATH.sub("", text)).strip()


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    frames: List[SampledFrame]
    width: int
    height: int


def decode_media(path: str, kind: str, ingest_config: IngestConfig) -> DecodeResult:
    """The frames the pipeline's ingest would sample (video) or the image as one frame; raises VideoError."""
    import cv2

    from deepfake_detection.ingest.sampling import sample_frames

    if kind == KIND_IMAGE:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise VideoError(contract.STATUS_UNREADABLE, "no decodable image")
        height, width = image.shape[:2]
        if width * height > ingest_config.max_pixels:
            raise VideoError(
                contract.STATUS_REJECTED,
                f"resolution {width}x{height} is over the limit of {ingest_config.max_pixels} pixels",
                "max_pixels",
            )
        return DecodeResult([SampledFrame(0, 0.0, image)], width, height)
    info, frames = sample_frames(path, ingest_config)
    return DecodeResult(frames, info.width, info.height)


Decoder = Callable[[str, str, IngestConfig], DecodeResult]


@dataclasses.dataclass(frozen=True)
class FramesHeader:
    """What precedes a decode child's frames in its answer file: the frames' indices, times and shape."""

    indices: List[int]
    timestamps: List[float]
    shape: Tuple[int, ...]
    width: int
    height: int

    @classmethod
    def of(cls, result: DecodeResult) -> "FramesHeader":
        shapes = {frame.image.shape for frame in result.frames}
        if len(shapes) > 1:
            raise ValueError(f"frames of one upload differ in shape: {sorted(shapes)}")
        shape = shapes.pop() if shapes else (0,)
        indices = [frame.index for frame in result.frames]
        return cls(indices, [frame.timestamp for frame in result.frames], shape, result.width, result.height)

    def mapped(self, path: str, offset: int) -> DecodeResult:
        """The frames as read-only views of the file's pages: no copy in the service's memory.

        The mapping outlives the file's name, so the file can be removed at
        once; its pages go back when the last frame is dropped.
        """
        if not self.indices:
            return DecodeResult([], self.width, self.height)
        pixels = np.memmap(path, np.uint8, "r", offset, (len(self.indices), *self.shape))
        times = zip(self.indices, self.timestamps, strict=True)
        frames = [SampledFrame(index, timestamp, pixels[n]) for n, (index, timestamp) in enumerate(times)]
        return DecodeResult(frames, self.width, self.height)


class IsolatedDecoder:
    """Runs `decoder` on each upload in a child process of its own, with a time limit.

    The children are forked by `serving.service.decode_worker`, a fork server that
    imports the decoding stack only, so the service's TensorFlow never enters
    them. `servers` of them (default: two per core) decode concurrently; more
    uploads wait for a free one.
    """

    def __init__(self, timeout_s: float = 60.0, decoder: Decoder = decode_media, servers: int = 0):
        self.timeout_s = timeout_s
        self.decoder = decoder
        self._size = servers or 2 * (os.cpu_count() or 1)
        self._idle: queue.Queue[Optional[subprocess.Popen]] = queue.Queue()
        for _ in range(self._size):
            self._idle.put(None)  # started on first use

    def warm_up(self) -> None:
        """Starts a fork server (it imports the decoding stack, a fraction of a second) and decodes a tiny image."""
        import cv2
        import numpy as np

        png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
        self.decode(png, KIND_IMAGE, "png", IngestConfig())

    def close(self) -> None:
        for _ in range(self._size):
            server = self._idle.get()
            if server is not None:
                server.stdin.close()
                server.wait(timeout=10)

    def decode(self, data: bytes, kind: str, extension: str, ingest_config: IngestConfig) -> DecodeResult:
        folder = RAM_FOLDER if os.path.isdir(RAM_FOLDER) and os.access(RAM_FOLDER, os.W_OK) else None
        with tempfile.NamedTemporaryFile(suffix=f".{extension}", dir=folder) as media:
            media.write(data)
            media.flush()
            answer_path = f"{media.name}.answer"
            try:
                return self._run(media.name, kind, ingest_config, answer_path)
            finally:
                if os.path.exists(answer_path):
                    os.remove(answer_path)

    def _run(self, path: str, kind: str, ingest_config: IngestConfig, answer_path: str) -> DecodeResult:
        server = self._idle.get()
        try:
            if server is None or server.poll() is not None:
                server = _start_server()
            pickle.dump((self.decoder, path, kind, ingest_config, answer_path, self.timeout_s), server.stdin)
            server.stdin.flush()
            ended, code = pickle.load(server.stdout)
        except (EOFError, OSError, pickle.PickleError) as e:
            server = None
            raise MediaError("decoder_crash", 422, f"the decode server failed: {type(e).__name__}") from e
        finally:
            self._idle.put(server)
        if ended == "timeout":
            message = f"decoding took longer than the limit of {self.timeout_s:g} s"
            raise MediaError("decode_timeout", 422, message, "decode_timeout_s")
        if code != 0 or not os.path.exists(answer_path):
            raise MediaError("decoder_crash", 422, f"the decoder crashed (exit code {code})")
        with open(answer_path, "rb") as f:
            outcome, payload = pickle.load(f)
            offset = f.tell()
        if outcome == "ok":
            return payload.mapped(answer_path, offset)
        if outcome == "video_error":
            status, reason, limit = payload
            if status == contract.STATUS_REJECTED:
                raise MediaError("limit", 422 if limit != "max_file_bytes" else 413, reason, limit)
            raise MediaError("undecodable", 422, reason)
        raise MediaError("decoder_error", 422, f"the decoder failed: {payload.splitlines()[0]}")


def _start_server() -> subprocess.Popen:
    command = [sys.executable, "-m", "serving.service.decode_worker"]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
