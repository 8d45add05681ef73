"""VideoExampleGen: a TFX Beam component turning a video dataset into face examples.

Outputs three artifacts: `examples` (one tf.Example per face crop, splits
train/eval/test), `clip_examples` (T crops of one face track, for the temporal
model) and `ingest_report` (one JSON line per input video with its status).
"""

from typing import Optional, Union

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import component_spec, standard_artifacts

from components.video_example_gen import executor
from deepfake_detection import component_ids
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import LAYOUT_AUTO

INPUT_BASE_KEY = "input_base"
LAYOUT_KEY = "layout"
INGEST_CONFIG_KEY = "ingest_config"
EXAMPLES_KEY = "examples"
CLIP_EXAMPLES_KEY = "clip_examples"
INGEST_REPORT_KEY = "ingest_report"


class IngestReport(types.Artifact):
    """A folder holding `ingest_report.jsonl`: the status of every input video."""

    TYPE_NAME = "deepfake.IngestReport"  # <namespace>.<Title>, as Kubeflow V2 requires of custom types


class VideoExampleGenSpec(types.ComponentSpec):
    PARAMETERS = {
        INPUT_BASE_KEY: component_spec.ExecutionParameter(type=str),
        LAYOUT_KEY: component_spec.ExecutionParameter(type=str),
        INGEST_CONFIG_KEY: component_spec.ExecutionParameter(type=str),
        component_ids.CODE_VERSION_KEY: component_spec.ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {}
    OUTPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        CLIP_EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        INGEST_REPORT_KEY: component_spec.ChannelParameter(type=IngestReport),
    }


class VideoExampleGen(base_beam_component.BaseBeamComponent):
    """Samples frames, detects and crops faces, and writes split tf.Examples."""

    SPEC_CLASS = VideoExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        input_base: Union[str, data_types.RuntimeParameter],
        layout: str = LAYOUT_AUTO,
        ingest_config: Optional[IngestConfig] = None,
        code_version: Optional[str] = None,
    ):
        spec = VideoExampleGenSpec(
            input_base=input_base,
            layout=layout,
            ingest_config=(ingest_config or IngestConfig()).to_json(),
            code_version=code_version,
            examples=types.Channel(type=standard_artifacts.Examples),
            clip_examples=types.Channel(type=standard_artifacts.Examples),
            ingest_report=types.Channel(type=IngestReport),
        )
        super().__init__(spec=spec)
