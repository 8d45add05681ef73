"""Decoders for the isolation tests: the real one, except on uploads that carry a marker.

A marked upload makes the child process abort (a decoder crash: SIGABRT) or
hang past the time limit, as a malformed file can make FFmpeg do; the service
must lose that one upload and nothing else.
"""

import os
import sys
import time

from serving.media import decode_media

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
    """Instead of frames: the modules the decode child has loaded once it decoded the upload."""
    decode_media(path, kind, ingest_config)
    return sorted(sys.modules)
