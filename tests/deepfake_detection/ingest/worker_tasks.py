"""Worker tasks that crash or hang, for the standalone ingest's tests.

A module of their own, apart from the tests: the ingest's spawned workers import
the module a task comes from, and the test module imports TensorFlow (seconds
per worker, more under load, which the hang test's time limit would count).
"""

import os
import time

from deepfake_detection.ingest.standalone import ingest_in_worker


def crash_on_marked_files(record):
    """A worker task that dies like a native decoder crash on files named `crash*`."""
    if os.path.basename(record.path).startswith("crash"):
        os._exit(11)
    return ingest_in_worker(record)


def hang_on_marked_files(record):
    """A worker task that never returns on files named `hang*`, like a decoder stuck in a loop."""
    if os.path.basename(record.path).startswith("hang"):
        time.sleep(3600)
    return ingest_in_worker(record)
