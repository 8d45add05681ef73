"""Decoders for the isolation tests: the real one, except on uploads that carry a marker.

A marked upload makes the child process abort (a decoder crash: SIGABRT) or
hang past the time limit, as a malformed file can make FFmpeg do; the service
must lose that one upload and nothing else.
"""

import os
import sys
import time

import numpy as np

from deepfake_detection.ingest.sampling import SampledFrame
from serving.service.media import DecodeResult, decode_media

CRASH_MARKER = b"CRASH-THE-DECODER"
HANG_MARKER = b"HANG-THE-DECODER"


def crashing_or_hanging(path, kind, ingest_config):
    with open(path, "rb") as f:
        data = f.read()
    if CRASH_MARKER in data:
        os.abort()
    if HANG_MARKER in data:
        time.sleep(600)
    return decode_media(path, kind, ingest_config)


def loaded_modules(path, kind, ingest_config):
    """Instead of pixels: the names of the modules the decode child has loaded once it decoded the upload,
    one per line, as the bytes of a one-frame answer (read back with `module_names`)."""
    decoded = decode_media(path, kind, ingest_config)
    names = np.frombuffer("\n".join(sorted(sys.modules)).encode(), np.uint8)
    return DecodeResult([SampledFrame(0, 0.0, names)], decoded.width, decoded.height)


def module_names(result: DecodeResult) -> list:
    return bytes(result.frames[0].image).decode().split("\n")
