"""Beam transforms of the video ingest, run by VideoExampleGen's executor (the standalone ingest runs the same
per-video function, `videos.ingest_video`, in a process pool instead).

The driver lists file paths only (a directory walk) and groups them in runs
of `VIDEOS_PER_ELEMENT`; the videos themselves are read in parallel by the
workers after a `Reshuffle`. Each worker builds one MTCNN detector in
`DoFn.setup` and reuses it for every video it processes, and reads the next
video of its run while detecting faces in the current one (`ingest_videos`).
"""

import json
import logging
import os
import sys
from typing import Dict, Iterator, List, Sequence

import apache_beam as beam

from deepfake_detection import contract
from deepfake_detection.ingest import report as report_lib
from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import VideoRecord
from deepfake_detection.ingest.videos import VideoResult, ingest_videos

FACES_TAG = "faces"
CLIPS_TAG = "clips"
REPORT_TAG = "report"
# Videos per element: enough for the read-ahead to keep both cores busy, few
# enough that a large dataset still spreads over many workers.
VIDEOS_PER_ELEMENT = 8


class IngestVideoDoFn(beam.DoFn):
    """Ingests a run of videos per element; emits tagged face examples, clip examples and a report row per video."""

    def __init__(self, ingest_config_json: str, total_videos: int):
        self._config_json = ingest_config_json
        self._total = total_videos
        self._done = 0
        self._status_counters = {
            status: beam.metrics.Metrics.counter("video_ingest", status) for status in contract.STATUSES
        }
        self._faces_counter = beam.metrics.Metrics.counter("video_ingest", "faces")

    def setup(self) -> None:
        self._config = IngestConfig.from_json(self._config_json)
        self._detector = FaceDetector.from_config(self._config)

    def process(self, records: Sequence[VideoRecord]) -> Iterator[beam.pvalue.TaggedOutput]:
        for result in ingest_videos(records, self._detector, self._config):
            yield from self._emit(result)

    def _emit(self, result: VideoResult) -> Iterator[beam.pvalue.TaggedOutput]:
        self._done += 1
        report = result.report
        self._status_counters[report["status"]].inc()
        self._faces_counter.inc(report["faces"])
        _print_progress(self._done, self._total, report)
        yield beam.pvalue.TaggedOutput(REPORT_TAG, json.dumps(report, sort_keys=True))
        for example in result.face_examples:
            yield beam.pvalue.TaggedOutput(FACES_TAG, (result.split, example))
        for example in result.clip_examples:
            yield beam.pvalue.TaggedOutput(CLIPS_TAG, (result.split, example))


def _print_progress(done: int, total: int, report: dict) -> None:
    message = report_lib.progress_line(done, total, report, scope="this worker")
    print(message, file=sys.stderr, flush=True)
    logging.info(message)


@beam.ptransform_fn
def IngestVideos(  # noqa: N802 - Beam transforms are named like classes
    pipeline: beam.Pipeline, records: Sequence[VideoRecord], ingest_config: IngestConfig
) -> Dict[str, beam.PCollection]:
    """Videos -> {'faces': (split, example), 'clips': (split, example), 'report': json line}."""
    outputs = (
        pipeline
        | "ListVideos" >> beam.Create(_runs(list(records), VIDEOS_PER_ELEMENT))
        | "Distribute" >> beam.Reshuffle()
        | "IngestVideo"
        >> beam.ParDo(IngestVideoDoFn(ingest_config.to_json(), len(records))).with_outputs(
            FACES_TAG, CLIPS_TAG, REPORT_TAG
        )
    )
    return {FACES_TAG: outputs[FACES_TAG], CLIPS_TAG: outputs[CLIPS_TAG], REPORT_TAG: outputs[REPORT_TAG]}


def _runs(records: List[VideoRecord], size: int) -> List[List[VideoRecord]]:
    return [records[start : start + size] for start in range(0, len(records), size)]


@beam.ptransform_fn
def WriteSplits(  # noqa: N802
    keyed_examples: beam.PCollection, output_dir: str, split_names: Sequence[str] = contract.SPLIT_NAMES
) -> List[beam.pvalue.PDone]:
    """Writes (split, serialized example) pairs to `output_dir/Split-<name>/` as gzipped TFRecords."""
    names = list(split_names)
    partitions = keyed_examples | "BySplit" >> beam.Partition(lambda item, _: names.index(item[0]), len(names))
    return [
        partition
        | f"Drop{name}Key" >> beam.Values()
        | f"Write{name}"
        >> beam.io.WriteToTFRecord(
            os.path.join(output_dir, f"Split-{name}", contract.EXAMPLES_FILE_PREFIX), file_name_suffix=".gz"
        )
        for name, partition in zip(names, partitions, strict=True)
    ]


@beam.ptransform_fn
def WriteReport(report_lines: beam.PCollection, output_dir: str) -> beam.pvalue.PDone:  # noqa: N802
    """Writes the ingest report as one JSON-lines file, sorted by video path."""
    return (
        report_lines
        | "Gather" >> beam.combiners.ToList()
        | "Sort" >> beam.FlatMap(lambda lines: sorted(lines, key=lambda line: json.loads(line)["video"]))
        | "WriteJsonl"
        >> beam.io.WriteToText(
            os.path.join(output_dir, contract.REPORT_FILE_NAME), shard_name_template="", num_shards=1
        )
    )
