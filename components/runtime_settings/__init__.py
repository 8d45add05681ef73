"""TFX's Trainer, Tuner and Evaluator with per-run settings as execution properties.

Kubeflow V2 compiles a runtime parameter only where it is a whole execution
property, never inside `custom_config` or `eval_config`; these components carry
the settings a scheduled run changes (epochs, tuner trials, blessing bounds) as
execution properties of their own, and their executors fold them into the
configuration before TFX's own executors run.
"""

from components.runtime_settings.component import (
    EvaluatorWithRunSettings,
    TrainerWithRunSettings,
    TunerWithRunSettings,
)

__all__ = [
    "EvaluatorWithRunSettings",
    "TrainerWithRunSettings",
    "TunerWithRunSettings",
]
