"""TFX's Trainer, Tuner and Evaluator, plus per-run settings as execution properties.

Named `...WithRunSettings` so that they are never mistaken for, or shadow, TFX's own classes.

Each setting is a plain value or a `RuntimeParameter`; None leaves TFX's
configuration as given. The settings are added to the component's execution
properties after TFX builds its spec, so the graph, caching and compilation are
TFX's own.
"""

from typing import Any, Mapping, Optional, Union

from tfx import v1 as tfx
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types

from components.runtime_settings import executor, settings

Setting = Optional[Union[int, float, data_types.RuntimeParameter]]


def _add_settings(component: Any, values: Mapping[str, Setting]) -> None:
    for name, value in values.items():
        if value is not None:
            component.exec_properties[name] = value


class TrainerWithRunSettings(tfx.components.Trainer):
    """TFX's Trainer with `epochs` and `warm_start` (1: start from `base_model` where it fits, 0: fresh) as
    execution properties."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.TrainerExecutor)

    def __init__(self, epochs: Setting = None, warm_start: Setting = None, **kwargs: Any):
        super().__init__(**kwargs)
        _add_settings(self, {"epochs": epochs, "warm_start": warm_start})


class TunerWithRunSettings(tfx.components.Tuner):
    """TFX's Tuner with `tuner_trials` (KerasTuner's max_trials) as an execution property."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.TunerExecutor)

    def __init__(self, tuner_trials: Setting = None, **kwargs: Any):
        super().__init__(**kwargs)
        _add_settings(self, {"tuner_trials": tuner_trials})


class EvaluatorWithRunSettings(tfx.components.Evaluator):
    """TFX's Evaluator with the overall AUC bound and the allowed AUC drop as execution properties."""

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.EvaluatorExecutor)

    def __init__(self, min_auc: Setting = None, max_auc_drop: Setting = None, **kwargs: Any):
        super().__init__(**kwargs)
        _add_settings(self, {settings.MIN_AUC: min_auc, settings.MAX_AUC_DROP: max_auc_drop})
