"""The decode child of the detection service: one upload in, its frames out, then exit.

`python -m serving.decode_worker` reads a pickled `(decoder, path, kind,
ingest_config)` on stdin and writes a pickled `(outcome, payload)` on stdout:
`("ok", DecodeResult)`, `("video_error", (status, reason, limit))` or
`("error", text)`. It imports OpenCV, numpy and the ingest's sampling before
reading, so a child started ahead is ready when its upload comes, and nothing
that loads TensorFlow (`tests/serving` checks the child's modules).
"""

import pickle
import sys
import traceback

import cv2  # noqa: F401 - loaded before the upload arrives

from deepfake_detection.ingest.sampling import VideoError
from serving import media  # noqa: F401 - the default decoder, unpickled by reference


def main() -> int:
    try:
        decoder, path, kind, ingest_config = pickle.load(sys.stdin.buffer)
    except EOFError:
        return 0  # the service went away before sending an upload
    try:
        outcome = ("ok", decoder(path, kind, ingest_config))
    except VideoError as e:
        outcome = ("video_error", (e.status, e.reason, e.limit))
    except Exception as e:  # noqa: BLE001 - any decoder failure goes back to the service as an answer
        outcome = ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}")
    sys.stdout.buffer.write(pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
