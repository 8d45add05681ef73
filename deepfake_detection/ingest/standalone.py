"""The standalone ingest of a dataset folder: one process per core, one detector each, no Beam, no TensorFlow.

`pipeline_runner.py ingest` is what a user runs to get face examples out of a
folder of videos. On a few videos its cost used to be start-up, not faces:
TensorFlow's import (3-4 s, for MTCNN and the tf.Example class) and Beam's
(2.5 s) plus the DirectRunner's bundle overhead (3-4 s) against about 2 s of
face detection. This path runs the same per-video function as the pipeline's
VideoExampleGen (`videos.ingest_video`: sampling, MTCNN on ONNX Runtime, tracks,
the keep rule, crops, examples), but not its Beam transforms: in worker processes that each build one detector
and take videos one at a time, so both cores are busy (one decodes while the
other detects). Workers are spawned, not forked: a caller may hold threads
(TensorFlow's, in a notebook or a test), and a spawned worker costs 0.1 s
more. It writes the same layout as the pipeline's VideoExampleGen:
`Split-<name>/data_tfrecord-00000-of-00001.gz` for faces and the same under
`clips/` for clips (gzipped TFRecords of tf.Examples), and
`ingest_report.jsonl`, one row per input file, sorted by path.
"""

import collections
import contextlib
import dataclasses
import json
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from deepfake_detection import contract
from deepfake_detection.ingest import report as report_lib
from deepfake_detection.ingest import tfrecords
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import VideoRecord
from deepfake_detection.ingest.splits import assign_split
from deepfake_detection.ingest.videos import VideoResult, ingest_video, report_row

CLIPS_DIR = "clips"
_SHARD_NAME = f"{contract.EXAMPLES_FILE_PREFIX}-00000-of-00001.gz"

# The worker process's detector and settings, made once by `_start_worker`.
_worker: Dict[str, object] = {}


def _start_worker(ingest_config_json: str) -> None:
    ingest_config = IngestConfig.from_json(ingest_config_json)
    _worker.update(config=ingest_config, detector=FaceDetector.from_config(ingest_config))


def ingest_in_worker(record: VideoRecord) -> VideoResult:
    """One video in a worker process, with the worker's detector."""
    return ingest_video(record, _worker["detector"], _worker["config"])  # type: ignore[arg-type]


Task = Callable[[VideoRecord], VideoResult]


def split_file(output_dir: str, split: str) -> str:
    return os.path.join(output_dir, f"Split-{split}", _SHARD_NAME)


class _SplitWriters:
    """One open gzipped TFRecord stream per split, for faces and for clips; every split's file is written."""

    def __init__(self, output_dir: str, stack: contextlib.ExitStack):
        self._streams = {}
        for kind, folder in (("faces", output_dir), ("clips", os.path.join(output_dir, CLIPS_DIR))):
            for split in contract.SPLIT_NAMES:
                path = split_file(folder, split)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self._streams[kind, split] = stack.enter_context(tfrecords.open_tfrecords(path))

    def write(self, result: VideoResult) -> None:
        for kind, examples in (("faces", result.face_examples), ("clips", result.clip_examples)):
            for example in examples:
                tfrecords.write_record(self._streams[kind, result.split], example)


def ingest_folder(
    records: Sequence[VideoRecord],
    ingest_config: IngestConfig,
    output_dir: str,
    workers: int = 0,
    progress: Optional[Callable[[str], None]] = None,
    task: Task = ingest_in_worker,
    video_timeout_s: float = contract.VIDEO_TIMEOUT_S,
) -> Dict[str, int]:
    """Ingests `records` into `output_dir` with `workers` processes (0: one per core); returns counts per status.

    Results are written as they arrive; each video's report row is kept, so
    every input file is in the report with its status, whatever happened: a
    video still running after `video_timeout_s` (a hung decoder) is stopped
    with its worker and reported `unreadable`. `task` is what a worker runs
    per video (a module-level function, so a spawned worker can import it).
    """
    workers = workers or os.cpu_count() or 1
    rows = []
    with contextlib.ExitStack() as stack:
        writers = _SplitWriters(output_dir, stack)
        width = min(workers, max(1, len(records)))
        for result in _results(records, ingest_config, width, task, video_timeout_s):
            writers.write(result)
            rows.append(result.report)
            if progress:
                progress(report_lib.progress_line(len(rows), len(records), result.report))
    rows.sort(key=lambda row: row["video"])
    report_path = os.path.join(output_dir, contract.REPORT_FILE_NAME)
    with open(report_path, "w") as f:
        f.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    return report_lib.summarize_report(report_path)


@dataclasses.dataclass
class _Stopped:
    """Why a pool of workers stopped early: the videos it held when a worker died, or the ones that overran."""

    in_flight: List[VideoRecord] = dataclasses.field(default_factory=list)
    overdue: List[VideoRecord] = dataclasses.field(default_factory=list)


def _results(  # noqa: ANN202 - a generator of VideoResult
    records: Sequence[VideoRecord], ingest_config: IngestConfig, workers: int, task: Task, timeout_s: float
):
    """Video results in the order they finish, from worker processes taking one video at a time.

    A worker that dies (a decoder's native crash takes its process with it)
    breaks the pool: the videos it held are tried again one at a time in a
    fresh worker, so the one that kills it is found, reported `unreadable`
    with the reason, and every other video is still ingested. A video that
    overruns is known by its own clock: it is reported at once, and the
    videos beside it go back to the queue.
    """
    todo = collections.deque(sorted(records, key=_size, reverse=True))
    alone: collections.deque = collections.deque()
    while todo or alone:
        queue, width = (alone, 1) if alone else (todo, workers)
        stopped = yield from _until_stopped(queue, ingest_config, width, task, timeout_s)
        for record in stopped.overdue:
            yield _failed(record, ingest_config, f"still running after {timeout_s:g} s (a hung decoder?); stopped")
        if stopped.overdue:
            queue.extendleft(reversed(stopped.in_flight))
        elif width == 1 and stopped.in_flight:
            yield _failed(stopped.in_flight[0], ingest_config, _WORKER_DIED)
        else:
            alone.extend(stopped.in_flight)


def _until_stopped(  # noqa: ANN202 - a generator of VideoResult returning a _Stopped
    queue: collections.deque, ingest_config: IngestConfig, width: int, task: Task, timeout_s: float
):
    """Yields results of `queue`'s videos, `width` in flight, until the queue is done, a worker dies or one overruns."""
    context = multiprocessing.get_context("spawn")
    settings = (ingest_config.to_json(),)
    with ProcessPoolExecutor(width, mp_context=context, initializer=_start_worker, initargs=settings) as pool:
        running: Dict[Future, Tuple[VideoRecord, float]] = {}
        while queue or running:
            while queue and len(running) < width:
                record = queue.popleft()
                running[pool.submit(task, record)] = (record, time.monotonic() + timeout_s)
            first_deadline = min(deadline for _, deadline in running.values())
            done, _ = wait(running, timeout=max(0.0, first_deadline - time.monotonic()), return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    result = future.result()
                except BrokenProcessPool:
                    return _Stopped(in_flight=[record for record, _ in running.values()])
                del running[future]
                yield result
            now = time.monotonic()
            overdue = [future for future, (_, deadline) in running.items() if deadline <= now and not future.done()]
            if overdue:
                _stop_workers(pool)
                late = [running.pop(future)[0] for future in overdue]
                return _Stopped(in_flight=[record for record, _ in running.values()], overdue=late)
    return _Stopped()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kills the pool's worker processes: a hung decoder does not return, so its worker cannot be asked to stop."""
    for process in list(pool._processes.values()):  # noqa: SLF001 - the pool has no public way to kill a worker
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


_WORKER_DIED = "the ingest worker process died while reading this file (a crash in its decoder)"


def _failed(record: VideoRecord, ingest_config: IngestConfig, reason: str) -> VideoResult:
    split = assign_split(record.source_id, ingest_config.split_buckets, record.split)
    return VideoResult(split, report_row(record, split, contract.STATUS_UNREADABLE, reason))


def _size(record: VideoRecord) -> int:
    """Largest videos first, so the last video to finish is a short one and no core waits long at the end."""
    try:
        return os.path.getsize(record.path)
    except OSError:
        return 0
