"""VideoExampleGen: a TFX Beam component turning the newest span of a video dataset into face examples.

Outputs three artifacts: `examples` (one tf.Example per face crop, splits
train/eval/test), `clip_examples` (T crops of one face track, for the temporal
model) and `ingest_report` (one JSON line per input video of the span with its
status). It is a FileBasedExampleGen to TFX: its driver (`driver.Driver`)
resolves the span as TFX's does, and Kubeflow V2 runs TFX's driver before its
cache check, so each artifact carries TFX's `span`, `version` and
`input_fingerprint` and the cache sees new videos.
"""

from typing import Optional, Union

from tfx import types
from tfx.components.example_gen.component import FileBasedExampleGen
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.orchestration import data_types
from tfx.types import component_spec, standard_artifacts, standard_component_specs

from components.video_example_gen import driver, executor, spans
from deepfake_detection import component_ids
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import LAYOUT_AUTO

INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY
LAYOUT_KEY = "layout"
INGEST_CONFIG_KEY = "ingest_config"
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY
CLIP_EXAMPLES_KEY = "clip_examples"
INGEST_REPORT_KEY = "ingest_report"


class IngestReport(types.Artifact):
    """A folder holding `ingest_report.jsonl`: the status of every input video."""

    TYPE_NAME = "deepfake.IngestReport"  # <namespace>.<Title>, as Kubeflow V2 requires of custom types


class VideoExampleGenSpec(types.ComponentSpec):
    PARAMETERS = {
        INPUT_BASE_KEY: component_spec.ExecutionParameter(type=str),
        # TFX's example_gen_pb2.Input as JSON (one split, the span pattern): a string, so that Kubeflow can take
        # it as a runtime parameter.
        INPUT_CONFIG_KEY: component_spec.ExecutionParameter(type=str),
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


class VideoExampleGen(FileBasedExampleGen):
    """Samples frames, detects and crops faces of the newest span, and writes split tf.Examples."""

    SPEC_CLASS = VideoExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = driver.Driver

    def __init__(
        self,
        input_base: Union[str, data_types.RuntimeParameter],
        input_config: Union[str, data_types.RuntimeParameter, None] = None,
        layout: str = LAYOUT_AUTO,
        ingest_config: Optional[IngestConfig] = None,
        code_version: Optional[str] = None,
    ):
        """`input_config`: `spans.input_config_json(pattern)`, or a runtime parameter holding it; default: the
        folder itself is the one span."""
        spec = VideoExampleGenSpec(
            input_base=input_base,
            input_config=input_config if input_config is not None else spans.input_config_json(""),
            layout=layout,
            ingest_config=(ingest_config or IngestConfig()).to_json(),
            code_version=code_version,
            examples=types.Channel(type=standard_artifacts.Examples),
            clip_examples=types.Channel(type=standard_artifacts.Examples),
            ingest_report=types.Channel(type=IngestReport),
        )
        base_beam_component.BaseBeamComponent.__init__(self, spec=spec)
