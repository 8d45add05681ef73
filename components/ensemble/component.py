"""EnsembleTrainer: fits ensemble weights of trained backbones on the eval split and exports one model.

Takes the union of the member Trainers' models; the output is a Model artifact
like any Trainer's (a `Format-Serving` SavedModel with the same signatures), so
it is evaluated and pushed like the others.
"""

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.ensemble import executor

MODELS_KEY = "models"
EXAMPLES_KEY = "examples"
MODEL_KEY = "model"
BATCH_SIZE_KEY = "batch_size"


class EnsembleTrainerSpec(types.ComponentSpec):
    PARAMETERS = {BATCH_SIZE_KEY: component_spec.ExecutionParameter(type=int)}
    INPUTS = {
        MODELS_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model),
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model)}


class EnsembleTrainer(base_component.BaseComponent):
    SPEC_CLASS = EnsembleTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, models: types.BaseChannel, examples: types.BaseChannel, batch_size: int = 32):
        spec = EnsembleTrainerSpec(
            models=models,
            examples=examples,
            batch_size=batch_size,
            model=types.Channel(type=standard_artifacts.Model),
        )
        super().__init__(spec=spec)
