"""Executors that fold the per-run settings into the configuration, then run TFX's own."""

import functools
from typing import Any, Callable, Dict, List

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.trainer import executor as trainer_executor
from tfx.components.tuner import executor as tuner_executor

from components.runtime_settings import settings

Fold = Callable[[Dict[str, Any]], Dict[str, Any]]


def _folding(name: str, base: type, fold: Fold) -> type:
    """A subclass of TFX executor `base` whose Do() first folds the settings with `fold`.

    `name` is the module attribute it is bound to: TFX records an executor by its import path.
    """

    class FoldingExecutor(base):
        def Do(
            self,
            input_dict: Dict[str, List[types.Artifact]],
            output_dict: Dict[str, List[types.Artifact]],
            exec_properties: Dict[str, Any],
        ) -> None:
            super().Do(input_dict, output_dict, fold(exec_properties))

    FoldingExecutor.__name__ = FoldingExecutor.__qualname__ = name
    return FoldingExecutor


TrainerExecutor = _folding(
    "TrainerExecutor",
    trainer_executor.GenericExecutor,
    functools.partial(settings.fold_into_custom_config, settings=settings.TRAINER_SETTINGS),
)
TunerExecutor = _folding(
    "TunerExecutor",
    tuner_executor.Executor,
    functools.partial(settings.fold_into_custom_config, settings=settings.TUNER_SETTINGS),
)
EvaluatorExecutor = _folding("EvaluatorExecutor", evaluator_executor.Executor, settings.fold_into_eval_config)
