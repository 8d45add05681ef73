"""EnsembleTrainer: fits ensemble weights of trained backbones on the eval split and exports one model.

The weights are fitted on the eval split with the members' own fakes: with
self-blended training, the eval split's real faces and their self-blends, so
no dataset manipulation leaks into the ensemble before it is judged on them.

Takes each member Trainer's model on an input of its own (`member_0`,
`member_1`, ...: Kubeflow V2 compiles no channel unions); the output is a Model
artifact like any Trainer's (a `Format-Serving` SavedModel with the same
signatures), so it is evaluated and pushed like the others.
"""

from typing import Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import component_spec, standard_artifacts

from components.ensemble import executor
from components.ensemble.ensemble import MEMBER_KEY_PREFIX
from deepfake_detection.models.data import FakeSource

MAX_MEMBERS = 8
EXAMPLES_KEY = "examples"
MODEL_KEY = "model"
BATCH_SIZE_KEY = "batch_size"
FAKE_SOURCE_KEY = "fake_source"


class EnsembleTrainerSpec(types.ComponentSpec):
    PARAMETERS = {
        BATCH_SIZE_KEY: component_spec.ExecutionParameter(type=int),
        FAKE_SOURCE_KEY: component_spec.ExecutionParameter(type=str),
    }
    INPUTS = {
        **{
            f"{MEMBER_KEY_PREFIX}{i}": component_spec.ChannelParameter(type=standard_artifacts.Model, optional=i >= 2)
            for i in range(MAX_MEMBERS)
        },
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {MODEL_KEY: component_spec.ChannelParameter(type=standard_artifacts.Model)}


class EnsembleTrainer(base_component.BaseComponent):
    SPEC_CLASS = EnsembleTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(
        self,
        members: Sequence[types.BaseChannel],
        examples: types.BaseChannel,
        batch_size: int = 32,
        fake_source: Optional[FakeSource] = None,
    ):
        """`fake_source`: the fakes the weights are fitted on, the members' own (self-blends stay self-blends)."""
        if not 2 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"An ensemble takes 2 to {MAX_MEMBERS} member models, got {len(members)}")
        spec = EnsembleTrainerSpec(
            **{f"{MEMBER_KEY_PREFIX}{i}": member for i, member in enumerate(members)},
            examples=examples,
            batch_size=batch_size,
            fake_source=(fake_source or FakeSource()).to_json(),
            model=types.Channel(type=standard_artifacts.Model),
        )
        super().__init__(spec=spec)
