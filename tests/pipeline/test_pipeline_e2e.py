"""End to end: the real pipeline factory on LocalDagRunner over tiny generated videos.

Asserts from ML Metadata that each component ran once and that the artifacts
are where the next stage reads them; a second run is served from the cache.
"""

import json
import os

import pytest
from ml_metadata import metadata_store
from tfx import v1 as tfx

from components.video_example_gen import IngestConfig
from pipeline import config
from pipeline.pipeline import create_pipeline
from schemas import FACE_SCHEMA_PATH

COMPONENTS = {"VideoExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator", "AnomalyGate"}


def _run(sample_dataset, root):
    metadata_path = os.path.join(root, "metadata.sqlite")
    pipeline = create_pipeline(
        pipeline_name="e2e-test",
        pipeline_root=os.path.join(root, "pipeline_root"),
        data_root=sample_dataset,
        schema_path=FACE_SCHEMA_PATH,
        ingest_config=IngestConfig(frames_per_video=4, image_size=64, clip_length=2),
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))


@pytest.mark.e2e
def test_pipeline_runs_end_to_end_and_caches(sample_dataset, tmp_path):
    store = _run(sample_dataset, str(tmp_path))
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    produced = {type_names[a.type_id] for a in store.get_artifacts()}
    assert {
        "Examples",
        "IngestReport",
        "Schema",
        "ExampleStatistics",
        "ExampleAnomalies",
        "DataValidationResult",
    } <= produced

    executions = store.get_executions()
    assert len(executions) == len(COMPONENTS)
    assert all(e.last_known_state == e.COMPLETE for e in executions)

    [report] = [a for a in store.get_artifacts() if type_names[a.type_id] == "IngestReport"]
    rows = [json.loads(line) for line in open(os.path.join(report.uri, config.REPORT_FILE_NAME))]
    assert len(rows) == 4 and all(row["status"] == "ok" and row["faces"] > 0 for row in rows)

    store = _run(sample_dataset, str(tmp_path))
    second_run = store.get_executions()[len(COMPONENTS) :]
    assert len(second_run) == len(COMPONENTS)
    assert {e.last_known_state for e in second_run} == {second_run[0].CACHED}
