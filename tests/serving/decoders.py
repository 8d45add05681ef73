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


# Where `planting_a_pickle`'s payload leaves its mark if the service ever unpickles it (set by the test).
MARKER_VARIABLE = "DECODER_TEST_MARKER"


class _Payload:
    """Unpickling this creates the marker file: what an attacker's code would do in the service."""

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(os.environ[MARKER_VARIABLE]),)


def planting_a_pickle(path, kind, ingest_config):
    """A decoder that hostile media took over: it writes a pickle payload where the service reads answers
    (beside the media, under any name it used) and exits before the real answer is written."""
    import pickle

    folder = os.path.dirname(path)
    for answer in (f"{path}.answer", os.path.join(folder, "answer")):
        with open(answer, "wb") as f:
            pickle.dump(("ok", _Payload()), f)
    os._exit(0)


def what_another_user_can_do(path, kind, ingest_config):
    """Instead of pixels: the decode folder's and media's modes and, when the child runs as root, what the
    unprivileged user `nobody` can do there (list the folder, read the media, create a file beside it), as
    the JSON bytes of a one-frame answer."""
    import json
    import pwd
    import stat

    folder = os.path.dirname(path)
    report = {
        "folder_mode": stat.S_IMODE(os.stat(folder).st_mode),
        "media_mode": stat.S_IMODE(os.stat(path).st_mode),
        "folder": folder,
    }
    if os.geteuid() == 0:
        report["as_nobody"] = _as_user(pwd.getpwnam("nobody"), folder, path)
    data = np.frombuffer(json.dumps(report).encode(), np.uint8)
    return DecodeResult([SampledFrame(0, 0.0, data)], 1, 1)


def _as_user(user, folder, path):
    """What `user` (a pwd entry) manages to do to the decode folder: {action: True when allowed}."""
    import json

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
        outcome = {}
        for action, attempt in (
            ("list", lambda: os.listdir(folder)),
            ("read_media", lambda: open(path, "rb").read(1)),
            ("create_answer", lambda: os.close(os.open(f"{path}.answer", os.O_CREAT | os.O_WRONLY, 0o644))),
            ("create_in_folder", lambda: os.close(os.open(os.path.join(folder, "x"), os.O_CREAT | os.O_WRONLY))),
        ):
            try:
                attempt()
                outcome[action] = True
            except OSError:
                outcome[action] = False
        os.write(write_end, json.dumps(outcome).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        outcome = json.loads(answer.read())
    os.waitpid(pid, 0)
    return outcome
