"""ModelCard: the operating point's rates on the test split, calibration and the model card of one model.

It runs after the Evaluator (and the Pusher, when there is one): it scores
the test split with the trained model, applies the operating point fitted in
training, and writes the card (JSON, Markdown, HTML) to its own artifact and,
when the model was pushed, into the pushed version's `assets.extra/`, with the training split's statistics
(`training_statistics`) for drift.
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.model_card import executor
from components.video_example_gen.component import IngestReport


class ModelCardArtifact(types.Artifact):
    """A folder with `assets.extra/model_card.{json,md,html}`."""

    TYPE_NAME = "deepfake.ModelCard"  # <namespace>.<Title>, as Kubeflow V2 requires


class ModelCardSpec(types.ComponentSpec):
    PARAMETERS = {
        "model_name": component_spec.ExecutionParameter(type=str),
        "test_split": component_spec.ExecutionParameter(type=str),
        "clip_length": component_spec.ExecutionParameter(type=int),
        "training_settings": component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {
        "model": component_spec.ChannelParameter(type=standard_artifacts.Model),
        "examples": component_spec.ChannelParameter(type=standard_artifacts.Examples),
        "evaluation": component_spec.ChannelParameter(type=standard_artifacts.ModelEvaluation),
        "blessing": component_spec.ChannelParameter(type=standard_artifacts.ModelBlessing),
        "ingest_report": component_spec.ChannelParameter(type=IngestReport),
        "pushed_model": component_spec.ChannelParameter(type=standard_artifacts.PushedModel, optional=True),
        "statistics": component_spec.ChannelParameter(type=standard_artifacts.ExampleStatistics, optional=True),
    }
    OUTPUTS = {"model_card": component_spec.ChannelParameter(type=ModelCardArtifact)}


class ModelCard(base_component.BaseComponent):
    SPEC_CLASS = ModelCardSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        model_name: str,
        model: types.BaseChannel,
        examples: types.BaseChannel,
        evaluation: types.BaseChannel,
        blessing: types.BaseChannel,
        ingest_report: types.BaseChannel,
        test_split: str,
        training_settings: str,
        clip_length: int = 0,
        pushed_model: Optional[types.BaseChannel] = None,
        statistics: Optional[types.BaseChannel] = None,
    ):
        super().__init__(
            spec=ModelCardSpec(
                model_name=model_name,
                test_split=test_split,
                clip_length=clip_length,
                training_settings=training_settings,
                model=model,
                examples=examples,
                evaluation=evaluation,
                blessing=blessing,
                ingest_report=ingest_report,
                pushed_model=pushed_model,
                statistics=statistics,
                model_card=types.Channel(type=ModelCardArtifact),
            )
        )
