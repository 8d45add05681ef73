"""The decode fork server of the detection service: a small program that forks one child per upload.

`python -m serving.service.decode_worker` imports OpenCV, numpy and the ingest's
sampling, nothing that loads TensorFlow, and then serves requests read as
pickles on stdin: `(decoder, path, kind, ingest_config, answer_path,
timeout_s)`. For each it forks a child that decodes and writes the pickled
`(outcome, payload)` to `answer_path` (`("ok", FramesHeader)` followed by the
frames' raw pixels, `("video_error", (status, reason, limit))` or
`("error", text)`), waits for it
at most `timeout_s` and kills it past that, and answers on stdout with
`("exited", exit code)` or `("timeout", None)`. A crash or a hang ends the
child, never this server; forking a warm single-threaded process costs
milliseconds, where a new interpreter costs a tenth of a second of CPU.
"""

import os
import pickle
import signal
import sys
import time
import traceback

import cv2  # noqa: F401 - loaded once here, inherited by every child
import numpy

from deepfake_detection.ingest.sampling import VideoError
from serving.service import media  # the default decoder, unpickled by reference, and the answer's header

_POLL_S = 0.002


def decode_to_file(decoder, path: str, kind: str, ingest_config, answer_path: str) -> None:  # noqa: ANN001
    """The child's work: decode, then write the outcome where the service reads it.

    Frames go after the header as raw pixels, one after the other, so the
    service maps them from the RAM-backed file instead of unpickling a copy.
    """
    frames = []
    try:
        result = decoder(path, kind, ingest_config)
        frames = [numpy.ascontiguousarray(frame.image) for frame in result.frames]
        outcome = ("ok", media.FramesHeader.of(result))
    except VideoError as e:
        outcome = ("video_error", (e.status, e.reason, e.limit))
    except Exception as e:  # noqa: BLE001 - any decoder failure goes back to the service as an answer
        outcome = ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    with open(answer_path, "wb") as f:
        pickle.dump(outcome, f, protocol=pickle.HIGHEST_PROTOCOL)
        for frame in frames:
            f.write(memoryview(frame).cast("B"))


def wait_at_most(pid: int, timeout_s: float) -> tuple:
    """("exited", code) with a negative code for a signal, or ("timeout", None) after killing the child."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "exited", os.waitstatus_to_exitcode(status)
        time.sleep(_POLL_S)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout", None


def serve(requests, answers) -> None:  # noqa: ANN001 - binary streams
    while True:
        try:
            decoder, path, kind, ingest_config, answer_path, timeout_s = pickle.load(requests)
        except EOFError:
            return  # the service went away
        pid = os.fork()
        if pid == 0:
            try:
                decode_to_file(decoder, path, kind, ingest_config, answer_path)
            finally:
                os._exit(0)
        pickle.dump(wait_at_most(pid, timeout_s), answers)
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
