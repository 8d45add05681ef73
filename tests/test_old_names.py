"""One name each: the only old path kept is the Trainer module's, which compiled pipelines and ML Metadata record
(`components.training.module.run_fn`); every other old path is gone."""

import importlib

import pytest


def test_the_recorded_trainer_module_path_gives_the_new_functions():
    old, new = (
        importlib.import_module("components.training.module"),
        importlib.import_module("components.trainer_module"),
    )
    for name in ("run_fn", "tuner_fn"):
        assert getattr(old, name) is getattr(new, name)


@pytest.mark.parametrize(
    "retired",
    [
        "deepfake_detection.config",
        "deepfake_detection.ingest.folder",
        "pipeline.runners.beam",
        "serving.video_client",
        "serving.detection_service",
        "serving.cli",
        "serving.clients",
        "serving.video_analysis",
    ],
)
def test_a_retired_path_is_gone(retired):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(retired)
