"""The pipeline's data half on LocalDagRunner with the cache on: spans of a growing data root, a run with no new
span, a folder without spans that gains a video."""

import json
import os
import shutil

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from components.video_example_gen.component import VideoExampleGen
from deepfake_detection import contract, sample_data
from deepfake_detection.ingest.ingest_config import IngestConfig
from pipeline.pipeline import PipelineSettings, create_pipeline
from pipeline.runners import flags
from pipeline.runners.local import drift_line, ingest_line
from schemas import FACE_SCHEMA_PATH

TINY = IngestConfig(frames_per_video=4, image_size=64, clip_length=2)


def _run(data_root: str, work: str) -> None:
    pipeline = create_pipeline(
        pipeline_name="spans-test",
        pipeline_root=os.path.join(work, "root"),
        data_root=data_root,
        schema_path=FACE_SCHEMA_PATH,
        settings=PipelineSettings(ingest_config=TINY, drift_config=flags.drift_config()),
        beam_pipeline_args=["--direct_num_workers=1"],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(work, "metadata.sqlite")
        ),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)


def _latest_report(work: str) -> list:
    folders = sorted(os.listdir(os.path.join(work, "root", "VideoExampleGen", "ingest_report")), key=int)
    path = os.path.join(work, "root", "VideoExampleGen", "ingest_report", folders[-1], contract.REPORT_FILE_NAME)
    with open(path) as f:
        return [json.loads(line)["video"] for line in f]


def _ingest_executions(work: str) -> list:
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(os.path.join(work, "metadata.sqlite"))
    return metadata_store.MetadataStore(config).get_executions_by_type(VideoExampleGen.get_class_type())


@pytest.mark.e2e
def test_each_run_ingests_only_the_newest_span_and_a_run_without_one_decodes_nothing(tmp_path):
    data, work = str(tmp_path / "data"), str(tmp_path / "work")
    sample_data.generate(os.path.join(data, "span-1"), num_videos=2, seed=1, seconds=0.5)
    _run(data, work)
    assert ingest_line(os.path.join(work, "metadata.sqlite")) == "Ingest: span 1 (version 0) read and decoded"
    first = _latest_report(work)
    assert len(first) == 2 and all(video.startswith("span-1/") for video in first)

    sample_data.generate(os.path.join(data, "span-2"), num_videos=2, seed=2, seconds=0.5)
    _run(data, work)
    assert ingest_line(os.path.join(work, "metadata.sqlite")) == "Ingest: span 2 (version 0) read and decoded"
    second = _latest_report(work)
    assert len(second) == 2 and all(video.startswith("span-2/") for video in second)
    assert drift_line(os.path.join(work, "root")).startswith("Drift (span 2 against span 1): ")

    _run(data, work)
    assert ingest_line(os.path.join(work, "metadata.sqlite")).startswith("Ingest: no new span or video; span 2 ")
    assert len(_latest_report(work)) == 2
    assert len(os.listdir(os.path.join(work, "root", "VideoExampleGen", "ingest_report"))) == 2


@pytest.mark.e2e
def test_a_folder_without_spans_that_gains_a_video_is_ingested_again_with_the_cache_on(tmp_path):
    data, work = str(tmp_path / "data"), str(tmp_path / "work")
    part = sample_data.generate(data, num_videos=2, seed=3, seconds=0.5)
    _run(data, work)
    assert len(_latest_report(work)) == 2
    with open(os.path.join(part, "metadata.json")) as f:
        metadata = json.load(f)
    name = sorted(metadata)[0]
    shutil.copy(os.path.join(part, name), os.path.join(part, "arrived_later.mp4"))
    metadata["arrived_later.mp4"] = metadata[name]
    with open(os.path.join(part, "metadata.json"), "w") as f:
        json.dump(metadata, f)
    _run(data, work)
    assert ingest_line(os.path.join(work, "metadata.sqlite")) == "Ingest: span 0 (version 1) read and decoded"
    assert len(_latest_report(work)) == 3
    assert [e.last_known_state for e in _ingest_executions(work)] == [metadata_store_pb2.Execution.COMPLETE] * 2
