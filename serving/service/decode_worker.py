"""The decode fork server of the detection service: a small program that forks one child per upload.

`python -m serving.service.decode_worker` imports OpenCV, numpy and the ingest's
sampling, nothing that loads TensorFlow, and then serves requests read as JSON
lines on stdin: `{decoder, path, kind, ingest_config, answer_path, timeout_s}`,
the decoder named `module:qualified name`. For each it forks a child that
decodes and writes its answer to `answer_path`, a new file (O_EXCL, 0600) in
the service's private folder: the magic, a JSON header (`ok` with the frames'
indices, times and shape, `video_error` with status, reason and limit, or
`error` with a message) and the frames' raw pixels (`media.write_answer`). It
waits for the child at most `timeout_s`, kills it past that, and reports on
stdout one JSON line, `{"ended": "exited", "code": N}` or `{"ended":
"timeout"}`. Nothing either way is pickled: neither side runs what the other
sends. A crash or a hang ends the child, never this server; forking a warm
single-threaded process costs milliseconds, where a new interpreter costs a
tenth of a second of CPU.
"""

import importlib
import json
import os
import signal
import sys
import time
import traceback
from typing import BinaryIO, Callable

import cv2  # noqa: F401 - loaded once here, inherited by every child

from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.sampling import VideoError
from serving.service import media

_POLL_S = 0.002
_ANSWER_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def resolve(reference: str) -> Callable:
    """The decoder function a `module:qualified name` reference names."""
    module, _, name = reference.partition(":")
    found = importlib.import_module(module)
    for part in name.split("."):
        found = getattr(found, part)
    return found


def decode_to_file(decoder: Callable, path: str, kind: str, ingest_config: IngestConfig, answer_path: str) -> None:
    """The child's work: decode, then write the outcome where the service reads it.

    Frames go after the header as raw pixels, one after the other, so the
    service maps them from the RAM-backed file instead of copying them.
    """
    frames = []
    try:
        result = decoder(path, kind, ingest_config)
        frames = [frame.image for frame in result.frames]
        header = media.FramesHeader.of(result)
        outcome, fields = (
            "ok",
            {
                "indices": [int(i) for i in header.indices],
                "timestamps": [float(t) for t in header.timestamps],
                "shape": [int(n) for n in header.shape],
                "width": int(header.width),
                "height": int(header.height),
            },
        )
    except VideoError as e:
        outcome, fields = "video_error", {"status": e.status, "reason": e.reason, "limit": e.limit}
    except Exception as e:  # noqa: BLE001 - any decoder failure goes back to the service as an answer
        outcome, fields = "error", {"message": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"}
    with os.fdopen(os.open(answer_path, _ANSWER_FLAGS, 0o600), "wb") as answer:
        media.write_answer(answer, outcome, fields, frames)


def wait_at_most(pid: int, timeout_s: float) -> dict:
    """{"ended": "exited", "code": N} with a negative code for a signal, or {"ended": "timeout"} after
    killing the child."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return {"ended": "exited", "code": os.waitstatus_to_exitcode(status)}
        time.sleep(_POLL_S)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return {"ended": "timeout"}


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    for line in requests:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                decoder = resolve(request["decoder"])
                ingest_config = IngestConfig.from_json(request["ingest_config"])
                decode_to_file(decoder, request["path"], request["kind"], ingest_config, request["answer_path"])
            finally:
                os._exit(0)
        answers.write(json.dumps(wait_at_most(pid, float(request["timeout_s"]))).encode() + b"\n")
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
