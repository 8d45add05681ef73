"""Executor of VideoExampleGen: unpacks the artifacts and runs the shared Beam transforms."""

import logging
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.video_example_gen import transforms
from deepfake_detection import contract
from deepfake_detection.ingest import report as report_lib
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset

_OUTPUT_KEYS = ("examples", "clip_examples", "ingest_report")


class Executor(base_beam_executor.BaseBeamExecutor):
    """Ingests every video under `input_base`; fails only on a bad setting or an unknown layout."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        ingest_config = IngestConfig.from_json(exec_properties["ingest_config"])
        records = read_dataset(exec_properties["input_base"], exec_properties["layout"])
        if not records:
            raise ValueError(f"No input files found under {exec_properties['input_base']!r}")
        examples, clips, report = (artifact_utils.get_single_instance(output_dict[key]) for key in _OUTPUT_KEYS)
        logging.info("Ingesting %d videos from %s", len(records), exec_properties["input_base"])

        with self._make_beam_pipeline() as pipeline:
            outputs = pipeline | "IngestVideos" >> transforms.IngestVideos(records, ingest_config)
            _ = outputs[transforms.FACES_TAG] | "WriteFaces" >> transforms.WriteSplits(examples.uri)
            _ = outputs[transforms.CLIPS_TAG] | "WriteClips" >> transforms.WriteSplits(clips.uri)
            _ = outputs[transforms.REPORT_TAG] | "WriteReport" >> transforms.WriteReport(report.uri)

        for artifact in (examples, clips):
            artifact.split_names = artifact_utils.encode_split_names(list(contract.SPLIT_NAMES))
            examples_utils.set_payload_format(artifact, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
        counts = report_lib.summarize_report(os.path.join(report.uri, contract.REPORT_FILE_NAME))
        for status, count in counts.items():
            report.set_int_custom_property(status, count)
        logging.info(report_lib.summary_line(counts))
