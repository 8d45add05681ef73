"""Executor of VideoExampleGen: ingests the span its driver resolved and runs the shared Beam transforms."""

import logging
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.example_gen import driver as example_gen_driver
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils

from components.video_example_gen import spans, transforms
from components.video_example_gen.driver import INPUT_BASE_KEY, INPUT_CONFIG_KEY, SPAN_KEY, VERSION_KEY
from deepfake_detection import contract
from deepfake_detection.ingest import report as report_lib
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import in_span, read_dataset

_OUTPUT_KEYS = ("examples", "clip_examples", "ingest_report")


class Executor(base_beam_executor.BaseBeamExecutor):
    """Ingests every video of the resolved span; fails only on a bad setting or an unknown layout."""

    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        ingest_config = IngestConfig.from_json(exec_properties["ingest_config"])
        resolved = spans.parse_input_config(exec_properties[INPUT_CONFIG_KEY])
        folder = spans.span_folder(exec_properties[INPUT_BASE_KEY], resolved)
        span = exec_properties[SPAN_KEY]
        records = in_span(read_dataset(folder, exec_properties["layout"]), span, spans.relative_span_folder(resolved))
        if not records:
            raise ValueError(f"No input files found under {folder!r}")
        examples, clips, report = (artifact_utils.get_single_instance(output_dict[key]) for key in _OUTPUT_KEYS)
        logging.info("Ingesting %d videos of span %d from %s", len(records), span, folder)

        with self._make_beam_pipeline() as pipeline:
            outputs = pipeline | "IngestVideos" >> transforms.IngestVideos(records, ingest_config)
            _ = outputs[transforms.FACES_TAG] | "WriteFaces" >> transforms.WriteSplits(examples.uri)
            _ = outputs[transforms.CLIPS_TAG] | "WriteClips" >> transforms.WriteSplits(clips.uri)
            _ = outputs[transforms.REPORT_TAG] | "WriteReport" >> transforms.WriteReport(report.uri)

        for artifact in (examples, clips):
            artifact.split_names = artifact_utils.encode_split_names(list(contract.SPLIT_NAMES))
            examples_utils.set_payload_format(artifact, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
            artifact.span, artifact.version = span, exec_properties[VERSION_KEY]
        for artifact in (examples, clips, report):
            example_gen_driver.update_output_artifact(exec_properties, artifact.mlmd_artifact)
            artifact.set_string_custom_property(INPUT_BASE_KEY, exec_properties[INPUT_BASE_KEY])
        counts = report_lib.summarize_report(os.path.join(report.uri, contract.REPORT_FILE_NAME))
        for status, count in counts.items():
            report.set_int_custom_property(status, count)
        logging.info(report_lib.summary_line(counts))
