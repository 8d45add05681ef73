"""Executors that fold the per-run settings into the configuration, then run TFX's own."""

from typing import Any, Dict, List

from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.components.trainer import executor as trainer_executor
from tfx.components.tuner import executor as tuner_executor

from components.runtime_settings import settings


class TrainerExecutor(trainer_executor.GenericExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        folded = settings.fold_into_custom_config(exec_properties, settings.TRAINER_SETTINGS)
        super().Do(input_dict, output_dict, folded)


class TunerExecutor(tuner_executor.Executor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        folded = settings.fold_into_custom_config(exec_properties, settings.TUNER_SETTINGS)
        super().Do(input_dict, output_dict, folded)


class EvaluatorExecutor(evaluator_executor.Executor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        super().Do(input_dict, output_dict, settings.fold_into_eval_config(exec_properties))
