"""Per-run settings fold into the configuration TFX's executors read."""

import json

import pytest
import tensorflow_model_analysis as tfma
from tfx.utils import proto_utils

from components.runtime_settings import TrainerWithRunSettings, settings
from deepfake_detection.evaluation.eval_config import BlessingConfig, build_eval_config


def test_trainer_and_tuner_settings_land_in_custom_config():
    folded = settings.fold_into_custom_config(
        {"custom_config": json.dumps({"backbone": "meso4", "epochs": 3}), "epochs": 30, "run_fn": "f"},
        settings.TRAINER_SETTINGS,
    )
    assert json.loads(folded["custom_config"]) == {"backbone": "meso4", "epochs": 30}
    assert "epochs" not in folded and folded["run_fn"] == "f"
    tuned = settings.fold_into_custom_config({"custom_config": "null", "tuner_trials": 5}, settings.TUNER_SETTINGS)
    assert json.loads(tuned["custom_config"]) == {"max_trials": 5}


def test_unset_settings_leave_the_configuration_alone():
    original = {"custom_config": json.dumps({"epochs": 3})}
    assert json.loads(settings.fold_into_custom_config(original, settings.TRAINER_SETTINGS)["custom_config"]) == {
        "epochs": 3
    }
    eval_config = proto_utils.proto_to_json(build_eval_config(BlessingConfig()))
    assert settings.fold_into_eval_config({"eval_config": eval_config})["eval_config"] == eval_config


def test_evaluator_settings_set_the_overall_auc_bounds_and_the_forgetting_guards():
    properties = {"eval_config": proto_utils.proto_to_json(build_eval_config(BlessingConfig())), "min_auc": 0.85}
    properties["max_auc_drop"] = 0.02
    folded = settings.fold_into_eval_config(properties)
    assert set(folded) == {"eval_config"}
    eval_config = proto_utils.json_to_proto(folded["eval_config"], tfma.EvalConfig())
    [auc] = [m for m in eval_config.metrics_specs[0].metrics if m.class_name == "AUC"]
    overall, per_span = auc.per_slice_thresholds
    assert overall.threshold.value_threshold.lower_bound.value == pytest.approx(0.85)
    assert overall.threshold.change_threshold.absolute.value == pytest.approx(-0.02)
    assert list(per_span.slicing_specs) == [tfma.SlicingSpec(feature_keys=["span"])]
    assert not per_span.threshold.HasField("value_threshold"), "min_auc bounds the overall AUC only"
    assert per_span.threshold.change_threshold.absolute.value == pytest.approx(-0.02)


def test_an_out_of_range_bound_is_refused():
    properties = {"eval_config": proto_utils.proto_to_json(build_eval_config(BlessingConfig())), "min_auc": 1.5}
    with pytest.raises(ValueError, match="min_auc"):
        settings.fold_into_eval_config(properties)


def test_components_carry_settings_as_execution_properties():
    from tfx import v1 as tfx

    examples = tfx.dsl.Channel(type=tfx.types.standard_artifacts.Examples)
    trainer = TrainerWithRunSettings(epochs=7, examples=examples, run_fn="components.trainer_module.run_fn")
    assert trainer.exec_properties["epochs"] == 7
    assert "warm_start" not in trainer.exec_properties
    assert TrainerWithRunSettings(warm_start=0, examples=examples, run_fn="m.f").exec_properties["warm_start"] == 0
    assert "epochs" not in TrainerWithRunSettings(examples=examples, run_fn="m.f").exec_properties
