"""The standalone ingest of a dataset folder: one process per core, one detector each, no Beam, no TensorFlow.

`pipeline_runner.py ingest` is what a user runs to get face examples out of a
folder of videos. On a few videos its cost used to be start-up, not faces:
TensorFlow's import (3-4 s, for MTCNN and the tf.Example class) and Beam's
(2.5 s) plus the DirectRunner's bundle overhead (3-4 s) against about 2 s of
face detection. This path runs the same per-video ingest as the Beam
transforms (`videos.ingest_video`: sampling, MTCNN on ONNX Runtime, tracks, the
keep rule, crops, examples), in worker processes that each build one detector
and take videos one at a time, so both cores are busy (one decodes while the
other detects). Workers are spawned, not forked: a caller may hold threads
(TensorFlow's, in a notebook or a test), and a spawned worker costs 0.1 s
more. It writes the same layout as the pipeline's VideoExampleGen:
`Split-<name>/data_tfrecord-00000-of-00001.gz` for faces and the same under
`clips/` for clips (gzipped TFRecords of tf.Examples), and
`ingest_report.jsonl`, one row per input file, sorted by path.
"""

import contextlib
import json
import multiprocessing
import os
from typing import Callable, Dict, Optional, Sequence

from deepfake_detection import config
from deepfake_detection.ingest import report as report_lib
from deepfake_detection.ingest import tfrecords
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import VideoRecord
from deepfake_detection.ingest.videos import VideoResult, ingest_video, ingest_videos

CLIPS_DIR = "clips"
_SHARD_NAME = f"{config.EXAMPLES_FILE_PREFIX}-00000-of-00001.gz"

# The worker process's detector and settings, made once by `_start_worker`.
_worker: Dict[str, object] = {}


def _start_worker(ingest_config_json: str) -> None:
    ingest_config = IngestConfig.from_json(ingest_config_json)
    _worker.update(config=ingest_config, detector=FaceDetector.from_config(ingest_config))


def _ingest_in_worker(record: VideoRecord) -> VideoResult:
    return ingest_video(record, _worker["detector"], _worker["config"])  # type: ignore[arg-type]


def split_file(output_dir: str, split: str) -> str:
    return os.path.join(output_dir, f"Split-{split}", _SHARD_NAME)


class _SplitWriters:
    """One open gzipped TFRecord stream per split, for faces and for clips; every split's file is written."""

    def __init__(self, output_dir: str, stack: contextlib.ExitStack):
        self._streams = {}
        for kind, folder in (("faces", output_dir), ("clips", os.path.join(output_dir, CLIPS_DIR))):
            for split in config.SPLIT_NAMES:
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
) -> Dict[str, int]:
    """Ingests `records` into `output_dir` with `workers` processes (0: one per core); returns counts per status.

    Results are written as they arrive; each video's report row is kept, so
    every input file is in the report with its status, whatever happened.
    """
    workers = workers or os.cpu_count() or 1
    rows = []
    with contextlib.ExitStack() as stack:
        writers = _SplitWriters(output_dir, stack)
        for result in _results(records, ingest_config, min(workers, max(1, len(records)))):
            writers.write(result)
            rows.append(result.report)
            if progress:
                progress(report_lib.progress_line(len(rows), len(records), result.report))
    rows.sort(key=lambda row: row["video"])
    report_path = os.path.join(output_dir, config.REPORT_FILE_NAME)
    with open(report_path, "w") as f:
        f.writelines(json.dumps(row, sort_keys=True) + "\n" for row in rows)
    return report_lib.summarize_report(report_path)


def _results(records: Sequence[VideoRecord], ingest_config: IngestConfig, workers: int):  # noqa: ANN202 - results
    """Video results in the order they finish: in this process (reading ahead) for one worker, else worker
    processes taking one video at a time."""
    if workers == 1:
        yield from ingest_videos(records, FaceDetector.from_config(ingest_config), ingest_config)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(ingest_config.to_json(),)) as pool:
        yield from pool.imap_unordered(_ingest_in_worker, sorted(records, key=_size, reverse=True))


def _size(record: VideoRecord) -> int:
    """Largest videos first, so the last video to finish is a short one and no core waits long at the end."""
    try:
        return os.path.getsize(record.path)
    except OSError:
        return 0
