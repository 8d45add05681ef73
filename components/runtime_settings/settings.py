"""Folding per-run settings (execution properties) into `custom_config` and `eval_config`: pure functions."""

from typing import Any, Dict, Mapping

import tensorflow_model_analysis as tfma
from tfx.utils import json_utils, proto_utils

# {execution property: custom_config key} of the Trainer and the Tuner.
TRAINER_SETTINGS = {"epochs": "epochs", "warm_start": "warm_start"}
TUNER_SETTINGS = {"tuner_trials": "max_trials"}
# Execution properties of the Evaluator, applied to the overall AUC threshold.
MIN_AUC = "min_auc"
MAX_AUC_DROP = "max_auc_drop"
EVALUATOR_SETTINGS = (MIN_AUC, MAX_AUC_DROP)


def fold_into_custom_config(exec_properties: Mapping[str, Any], settings: Mapping[str, str]) -> Dict[str, Any]:
    """A copy of `exec_properties` whose `custom_config` holds the settings present; the settings are removed."""
    result = dict(exec_properties)
    custom_config = json_utils.loads(result.get("custom_config") or "null") or {}
    for prop, key in settings.items():
        value = result.pop(prop, None)
        if value is not None:
            custom_config[key] = value
    result["custom_config"] = json_utils.dumps(custom_config)
    return result


def fold_into_eval_config(exec_properties: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of `exec_properties` whose `eval_config` carries `min_auc` / `max_auc_drop` on its overall AUC bound."""
    from deepfake_detection.evaluation.eval_config import override_auc_threshold

    result = dict(exec_properties)
    min_auc, max_auc_drop = (result.pop(name, None) for name in EVALUATOR_SETTINGS)
    if min_auc is not None or max_auc_drop is not None:
        eval_config = proto_utils.json_to_proto(result["eval_config"], tfma.EvalConfig())
        override_auc_threshold(eval_config, min_auc, max_auc_drop)
        result["eval_config"] = proto_utils.proto_to_json(eval_config)
    return result
