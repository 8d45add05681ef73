"""Every renamed module keeps its old import path, and the old path gives the very same objects.

Pipelines compiled or recorded in ML Metadata before a rename name the old paths
(`components.training.module.run_fn`), and users' scripts import them.
"""

import importlib

import pytest


@pytest.mark.parametrize(
    "old, new, names",
    [
        ("pipeline.runners.beam", "pipeline.runners.beam_presets", ["beam_args", "BEAM_RUNNERS"]),
        ("deepfake_detection.ingest.folder", "deepfake_detection.ingest.standalone", ["ingest_folder", "CLIPS_DIR"]),
        ("components.training.module", "components.trainer_module", ["run_fn", "tuner_fn"]),
        ("deepfake_detection.config", "deepfake_detection.contract", ["IMAGE_KEY", "SPLIT_NAMES", "OUTPUT_KEY"]),
        ("deepfake_detection.config", "deepfake_detection.component_ids", ["node_id", "model_of", "EVALUATOR"]),
        ("deepfake_detection.config", "deepfake_detection.defaults", ["LOCAL_EPOCHS", "LOCAL_FAKE_SOURCE"]),
        ("serving.video_client", "serving.video_analysis", ["VideoAnalyzer", "VERDICT_UNCERTAIN", "decide"]),
        ("serving.detection_service", "serving.service_settings", ["ServiceSettings", "auth_mode"]),
        ("serving.detection_service", "serving.uploads", ["Upload", "parse_uploads"]),
    ],
)
def test_the_old_path_gives_the_new_objects(old, new, names):
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_module, name) is getattr(new_module, name), f"{old}.{name}"


def test_the_old_component_names_are_the_run_settings_components():
    from components import runtime_settings

    assert runtime_settings.Trainer is runtime_settings.TrainerWithRunSettings
    assert runtime_settings.Tuner is runtime_settings.TunerWithRunSettings
    assert runtime_settings.Evaluator is runtime_settings.EvaluatorWithRunSettings
