"""The VideoExampleGen executor's Do() on hand-built artifacts in a temp dir."""

import json
import os

import pytest
from tfx.components.util import examples_utils
from tfx.types import artifact_utils, standard_artifacts

from components.video_example_gen import spans
from components.video_example_gen.component import IngestReport
from components.video_example_gen.executor import Executor
from deepfake_detection import contract
from deepfake_detection.ingest.ingest_config import IngestConfig
from tests.helpers import make_artifact


def test_do_writes_examples_clips_and_report(sample_dataset, tmp_path):
    examples = make_artifact(standard_artifacts.Examples, str(tmp_path / "examples"))
    clips = make_artifact(standard_artifacts.Examples, str(tmp_path / "clips"))
    report = make_artifact(IngestReport, str(tmp_path / "report"))
    exec_properties = {
        "input_base": sample_dataset,
        "input_config": spans.input_config_json(""),
        "span": 0,
        "version": 0,
        "layout": "auto",
        "ingest_config": IngestConfig(frames_per_video=4, image_size=64, clip_length=2).to_json(),
    }
    Executor().Do({}, {"examples": [examples], "clip_examples": [clips], "ingest_report": [report]}, exec_properties)

    assert artifact_utils.decode_split_names(examples.split_names) == list(contract.SPLIT_NAMES)
    assert examples_utils.get_payload_format_string(examples) == "FORMAT_TF_EXAMPLE"
    for split in contract.SPLIT_NAMES:
        assert os.listdir(os.path.join(examples.uri, f"Split-{split}"))
    rows = [json.loads(line) for line in open(os.path.join(report.uri, contract.REPORT_FILE_NAME))]
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    assert report.get_int_custom_property("ok") == 4
    assert report.get_int_custom_property("unreadable") == 0


def test_do_refuses_an_empty_dataset(tmp_path):
    os.makedirs(tmp_path / "data" / "real")
    outputs = {
        "examples": [make_artifact(standard_artifacts.Examples, str(tmp_path / "e"))],
        "clip_examples": [make_artifact(standard_artifacts.Examples, str(tmp_path / "c"))],
        "ingest_report": [make_artifact(IngestReport, str(tmp_path / "r"))],
    }
    properties = {
        "input_base": str(tmp_path / "data"),
        "input_config": spans.input_config_json(""),
        "span": 0,
        "version": 0,
        "layout": "auto",
        "ingest_config": IngestConfig().to_json(),
    }
    with pytest.raises(ValueError, match="No input files"):
        Executor().Do({}, outputs, properties)
