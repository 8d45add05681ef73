"""Uploaded media: what kind it is, and decoding it in an isolated process under a time limit.

A malformed file can hang or crash a decoder (FFmpeg, libjpeg, libwebp): the
service decodes each upload in a child process of a fork server that holds no
TensorFlow threads, waits at most `timeout_s`, and kills it past that; a crash
or a timeout costs that one upload an error, never the service. The media only
ever lives in memory and, for the decoder, in a private file on a RAM-backed
folder that is removed as soon as the decode ends.
"""

import dataclasses
import multiprocessing
import os
import sys
import tempfile
import traceback
from typing import Callable, List, Optional, Tuple

from components.video_example_gen.ingest_config import IngestConfig
from components.video_example_gen.sampling import SampledFrame, VideoError
from pipeline import config

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


@dataclasses.dataclass(frozen=True)
class DecodeResult:
    frames: List[SampledFrame]
    width: int
    height: int


def decode_media(path: str, kind: str, ingest_config: IngestConfig) -> DecodeResult:
    """The frames the pipeline's ingest would sample (video) or the image as one frame; raises VideoError."""
    import cv2

    from components.video_example_gen.sampling import sample_frames

    if kind == KIND_IMAGE:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise VideoError(config.STATUS_UNREADABLE, "no decodable image")
        height, width = image.shape[:2]
        if width * height > ingest_config.max_pixels:
            raise VideoError(
                config.STATUS_REJECTED,
                f"resolution {width}x{height} is over the limit of {ingest_config.max_pixels} pixels",
                "max_pixels",
            )
        return DecodeResult([SampledFrame(0, 0.0, image)], width, height)
    info, frames = sample_frames(path, ingest_config)
    return DecodeResult(frames, info.width, info.height)


Decoder = Callable[[str, str, IngestConfig], DecodeResult]


def _decode_in_child(decoder: Decoder, path: str, kind: str, ingest_config: IngestConfig, connection) -> None:  # noqa: ANN001
    try:
        connection.send(("ok", decoder(path, kind, ingest_config)))
    except VideoError as e:
        connection.send(("video_error", (e.status, e.reason, e.limit)))
    except Exception as e:  # noqa: BLE001 - any decoder failure goes back to the parent as an answer
        connection.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"))
    finally:
        connection.close()


def _main_module() -> List[str]:
    """The program's main module when it runs as `python -m NAME`: each decode child re-runs it, so the fork
    server imports it (and what it imports) once, instead of every child importing it anew."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    return [spec.name] if spec is not None and spec.name else []


class IsolatedDecoder:
    """Runs `decoder` in a fresh child process per upload, with a time limit."""

    def __init__(self, timeout_s: float = 60.0, decoder: Decoder = decode_media):
        self.timeout_s = timeout_s
        self.decoder = decoder
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["cv2", "numpy", "components.video_example_gen.sampling", *_main_module()])

    def warm_up(self) -> None:
        """Starts the fork server (it imports the decoding stack, seconds) before the first upload needs it."""
        import cv2
        import numpy as np

        png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
        self.decode(png, KIND_IMAGE, "png", IngestConfig())

    def decode(self, data: bytes, kind: str, extension: str, ingest_config: IngestConfig) -> DecodeResult:
        folder = RAM_FOLDER if os.path.isdir(RAM_FOLDER) and os.access(RAM_FOLDER, os.W_OK) else None
        with tempfile.NamedTemporaryFile(suffix=f".{extension}", dir=folder) as media:
            media.write(data)
            media.flush()
            return self._run(media.name, kind, ingest_config)

    def _run(self, path: str, kind: str, ingest_config: IngestConfig) -> DecodeResult:
        receiver, sender = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=_decode_in_child, args=(self.decoder, path, kind, ingest_config, sender), daemon=True
        )
        child.start()
        sender.close()
        try:
            if not receiver.poll(self.timeout_s):
                raise MediaError(
                    "decode_timeout",
                    422,
                    f"decoding took longer than the limit of {self.timeout_s:g} s",
                    "decode_timeout_s",
                )
            outcome, payload = receiver.recv()
        except EOFError as e:
            child.join(5)
            raise MediaError("decoder_crash", 422, f"the decoder crashed (exit code {child.exitcode})") from e
        finally:
            if child.is_alive():
                child.kill()
            child.join(5)
            receiver.close()
        if outcome == "ok":
            return payload
        if outcome == "video_error":
            status, reason, limit = payload
            if status == config.STATUS_REJECTED:
                raise MediaError("limit", 422 if limit != "max_file_bytes" else 413, reason, limit)
            raise MediaError("undecodable", 422, reason)
        raise MediaError("decoder_error", 422, f"the decoder failed: {payload.splitlines()[0]}")
