"""Uploaded media: what kind it is, and decoding it in an isolated process under a time limit.

A malformed file can hang or crash a decoder (FFmpeg, libjpeg, libwebp): the
service decodes each upload in a child process of its own, forked by
`serving.service.decode_worker` (OpenCV, numpy and the ingest's sampling, no
TensorFlow), waits at most `timeout_s`, and kills it past that; a crash or a
timeout costs that one upload an error, never the service. The media only
ever lives in memory and, for the decoder, in a fresh folder of the service's
own (mode 0700, on a RAM-backed file system) that is removed as soon as the
decode ends. The child answers in JSON and raw pixels, never pickle: what it
writes is checked and read as data (`read_answer`), so a decoder that hostile
media took over cannot run code in the service.
"""

import collections
import dataclasses
import json
import math
import os
import queue
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, BinaryIO, Callable, List, Optional, Sequence, Tuple

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
# How the decode folder's files are created: new (never an existing file or a link planted there), private.
_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# The decode server's one-line report of how a child ended is a few dozen bytes.
_MAX_REPORT_BYTES = 4096


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


ANSWER_MAGIC = b"DFKANSWER1\n"
# A header longer than this is no honest answer (32 frames' indices and times take about 2 KB).
MAX_HEADER_BYTES = 1 << 20
OUTCOMES = ("ok", "video_error", "error")


class AnswerError(ValueError):
    """A decode child's answer that does not follow the format: refused, never interpreted."""


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

    @classmethod
    def checked(cls, fields: dict) -> "FramesHeader":
        """The header of an answer's JSON fields, every type and bound checked (AnswerError if not)."""
        indices, timestamps, shape = fields.get("indices"), fields.get("timestamps"), fields.get("shape")
        width, height = fields.get("width"), fields.get("height")
        if not (_ints(indices, 0) and _numbers(timestamps) and len(indices) == len(timestamps)):
            raise AnswerError("the frames' indices and times are not two lists of the same length")
        if not (_ints(shape, 0) and 1 <= len(shape) <= 3 and _ints([width, height], 0)):
            raise AnswerError("the frames' shape or the media's size is not a list of sizes")
        return cls(indices, [float(t) for t in timestamps], tuple(shape), width, height)

    @property
    def pixel_bytes(self) -> int:
        return len(self.indices) * math.prod(self.shape) if self.indices else 0

    def mapped(self, answer: BinaryIO, offset: int) -> DecodeResult:
        """The frames as read-only views of the answer file's pages: no copy in the service's memory.

        The mapping outlives the file's name, so the file can be removed at
        once; its pages go back when the last frame is dropped.
        """
        if not self.indices:
            return DecodeResult([], self.width, self.height)
        pixels = np.memmap(answer, np.uint8, "r", offset, (len(self.indices), *self.shape))
        times = zip(self.indices, self.timestamps, strict=True)
        frames = [SampledFrame(index, timestamp, pixels[n]) for n, (index, timestamp) in enumerate(times)]
        return DecodeResult(frames, self.width, self.height)


def _ints(values: Any, minimum: int) -> bool:
    return isinstance(values, list) and all(type(v) is int and v >= minimum for v in values)


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(type(v) in (int, float) and math.isfinite(v) for v in values)


def write_answer(answer: BinaryIO, outcome: str, fields: dict, frames: Sequence[np.ndarray] = ()) -> None:
    """A decode child's answer: the magic, the JSON header's length and the header, then the raw pixels.

    JSON and raw bytes, never pickle: the child decodes hostile media, so the
    service must be able to read whatever it writes without running any of it.
    """
    header = json.dumps({"outcome": outcome, **fields}).encode()
    answer.write(ANSWER_MAGIC + struct.pack(">I", len(header)) + header)
    for frame in frames:
        answer.write(memoryview(np.ascontiguousarray(frame, np.uint8)).cast("B"))


def read_answer(answer: BinaryIO) -> Tuple[str, dict, int]:
    """(outcome, header fields, offset of the pixels) of an answer file, checked against its size.

    Anything but a well-formed answer whose size is exactly its header's and
    its frames' raises AnswerError: the bytes are data, never code.
    """
    size = os.fstat(answer.fileno()).st_size
    prefix = answer.read(len(ANSWER_MAGIC) + 4)
    if len(prefix) != len(ANSWER_MAGIC) + 4 or not prefix.startswith(ANSWER_MAGIC):
        raise AnswerError("not a decode answer")
    (length,) = struct.unpack(">I", prefix[len(ANSWER_MAGIC) :])
    if length > MAX_HEADER_BYTES or len(prefix) + length > size:
        raise AnswerError(f"a header of {length} bytes in an answer of {size}")
    try:
        fields = json.loads(answer.read(length))
    except (UnicodeDecodeError, ValueError) as e:
        raise AnswerError(f"the header is not JSON: {e}") from None
    if not isinstance(fields, dict) or fields.get("outcome") not in OUTCOMES:
        raise AnswerError("the header names no known outcome")
    offset = len(prefix) + length
    pixels = FramesHeader.checked(fields).pixel_bytes if fields["outcome"] == "ok" else 0
    if offset + pixels != size:
        raise AnswerError(f"{size - offset} bytes of pixels where the header promises {pixels}")
    return fields.pop("outcome"), fields, offset


def open_private(path: str) -> BinaryIO:
    """`path` opened for reading only if it is a regular file of this process's user, never through a link
    (nor blocking on a FIFO planted there)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    found = os.fstat(descriptor)
    if not stat.S_ISREG(found.st_mode) or found.st_uid != os.geteuid():
        os.close(descriptor)
        raise AnswerError("the answer is not a regular file of the service's user")
    return os.fdopen(descriptor, "rb")


def decoder_reference(decoder: Decoder) -> str:
    """`module:qualified name` of a decoder function, which the decode server imports (no pickled code)."""
    return f"{decoder.__module__}:{decoder.__qualname__}"


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
        """The upload's frames, decoded by a child in a fresh folder that only the service's user can enter.

        The folder (0700, a random name) holds the media and the child's answer,
        each created with O_EXCL at mode 0600, and is removed whatever happens:
        no other local user can read the frames, or plant a file the service reads.
        """
        folder = RAM_FOLDER if os.path.isdir(RAM_FOLDER) and os.access(RAM_FOLDER, os.W_OK) else None
        private = tempfile.mkdtemp(prefix="decode-", dir=folder)
        try:
            media_path = os.path.join(private, f"media.{extension}")
            with os.fdopen(os.open(media_path, _EXCLUSIVE, 0o600), "wb") as media:
                media.write(data)
            return self._run(media_path, kind, ingest_config, os.path.join(private, "answer"))
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _run(self, path: str, kind: str, ingest_config: IngestConfig, answer_path: str) -> DecodeResult:
        server = self._idle.get()
        request = {
            "decoder": decoder_reference(self.decoder),
            "path": path,
            "kind": kind,
            "ingest_config": ingest_config.to_json(),
            "answer_path": answer_path,
            "timeout_s": self.timeout_s,
        }
        try:
            if server is None or server.poll() is not None:
                server = _start_server()
            server.stdin.write(json.dumps(request).encode() + b"\n")
            server.stdin.flush()
            ended, code = _exit_report(server.stdout.readline(_MAX_REPORT_BYTES))
        except (OSError, ValueError) as e:
            server = None
            raise MediaError("decoder_crash", 422, f"the decode server failed: {type(e).__name__}") from e
        finally:
            self._idle.put(server)
        if ended == "timeout":
            message = f"decoding took longer than the limit of {self.timeout_s:g} s"
            raise MediaError("decode_timeout", 422, message, "decode_timeout_s")
        if code != 0 or not os.path.exists(answer_path):
            raise MediaError("decoder_crash", 422, f"the decoder crashed (exit code {code})")
        return _result_of(answer_path)


def _exit_report(line: bytes) -> Tuple[str, Optional[int]]:
    """("exited", code) or ("timeout", None) from the decode server's JSON line; ValueError for anything else."""
    report = json.loads(line) if line.endswith(b"\n") else None
    if not isinstance(report, dict) or report.get("ended") not in ("exited", "timeout"):
        raise ValueError("the decode server's report is malformed")
    code = report.get("code")
    if code is not None and type(code) is not int:
        raise ValueError("the decode server's exit code is not a number")
    return report["ended"], code


def _result_of(answer_path: str) -> DecodeResult:
    """The frames of a decode child's answer, or the MediaError it reports; a malformed answer is refused."""
    try:
        with open_private(answer_path) as answer:
            outcome, fields, offset = read_answer(answer)
            if outcome == "ok":
                return FramesHeader.checked(fields).mapped(answer, offset)
    except (AnswerError, OSError) as e:
        raise MediaError("decoder_error", 422, f"the decoder's answer was refused: {e}") from None
    if outcome == "video_error":
        status, reason, limit = fields.get("status"), str(fields.get("reason")), fields.get("limit")
        if status == contract.STATUS_REJECTED:
            raise MediaError("limit", 422 if limit != "max_file_bytes" else 413, reason, str(limit))
        raise MediaError("undecodable", 422, reason)
    raise MediaError("decoder_error", 422, f"the decoder failed: {str(fields.get('message')).splitlines()[0]}")


def _start_server() -> subprocess.Popen:
    command = [sys.executable, "-m", "serving.service.decode_worker"]
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


THUMBNAIL_FIELD = "thumbnail_jpeg_b64"


class RecentThumbnails:
    """Face thumbnails of finished jobs, held in this replica's memory for a while and never in a database.

    Thumbnails are media (crops of the uploaded faces): a job's document in
    the shared database goes without them, and `GET /v1/jobs/<id>` on the
    replica that ran the job puts them back for `kept_s`, within `max_bytes`
    in all (the oldest go first). Another replica answers the job without them.
    """

    def __init__(self, kept_s: float = 600.0, max_bytes: int = 64 * 1024 * 1024):
        self.kept_s = kept_s
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # job id -> (when it expires, {(result, face): thumbnail}, bytes), oldest first.
        self._jobs: collections.OrderedDict[str, Tuple[float, dict, int]] = collections.OrderedDict()
        self._bytes = 0

    def take_out(self, job_id: str, answer: dict, first: int = 0) -> None:
        """Removes the thumbnails from a job's `answer` (in place; its first result is the job's result number
        `first`), keeping them here for `kept_s` beside the job's others."""
        thumbnails = {}
        for r, result in enumerate(answer.get("results", []), start=first):
            for f, face in enumerate(result.get("faces", [])):
                if face.get(THUMBNAIL_FIELD):
                    thumbnails[(r, f)] = face[THUMBNAIL_FIELD]
                face.pop(THUMBNAIL_FIELD, None)
        size = sum(len(t) for t in thumbnails.values())
        if not thumbnails or size > self.max_bytes:
            return
        with self._lock:
            _, held, held_size = self._jobs.pop(job_id, (0.0, {}, 0))
            self._bytes -= held_size
            thumbnails, size = {**held, **thumbnails}, size + held_size
            self._forget(time.monotonic(), self.max_bytes - size)
            self._jobs[job_id] = (time.monotonic() + self.kept_s, thumbnails, size)
            self._bytes += size

    def put_back(self, job_id: str, document: dict) -> dict:
        """`document` with the job's thumbnails, while this replica still holds them."""
        with self._lock:
            self._forget(time.monotonic(), self.max_bytes)
            held = self._jobs.get(job_id)
        if held is not None:
            results = document.get("results", [])
            for (r, f), thumbnail in held[1].items():
                if r < len(results) and f < len(results[r].get("faces", [])):
                    results[r]["faces"][f][THUMBNAIL_FIELD] = thumbnail
        return document

    def _forget(self, now: float, room: int) -> None:
        """Drops expired jobs, then the oldest until at most `room` bytes are held; under the lock."""
        while self._jobs:
            job_id, (expires, _, size) = next(iter(self._jobs.items()))
            if expires > now and self._bytes <= room:
                return
            del self._jobs[job_id]
            self._bytes -= size
