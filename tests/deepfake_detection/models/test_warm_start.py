"""Warm start: a new model takes a blessed model's weights when the architecture matches, and starts fresh, with
the reason, when it changed, when the base cannot be loaded, when there is none, or when warm start is off."""

import os

import keras
import numpy as np
import pytest

from deepfake_detection.models import export, locator, warm_start
from deepfake_detection.models.training import TrainingConfig, build_and_compile


def _model(seed: int, input_size: int = 32) -> keras.Model:
    keras.utils.set_random_seed(seed)
    training = TrainingConfig(backbone="compact_cnn", input_size=input_size)
    return build_and_compile(training, {})


def _same(a: keras.Model, b: keras.Model) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.get_weights(), b.get_weights(), strict=True))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A saved model as the Trainer writes it: `<uri>/keras/model.keras` beside `<uri>/Format-Serving`."""
    uri = str(tmp_path_factory.mktemp("base"))
    model = _model(seed=1)
    export.save_keras(model, uri)
    return model, os.path.join(uri, export.SERVING_DIR)


def test_a_model_of_the_same_architecture_starts_from_the_base_weights(base):
    base_model, base_dir = base
    model = _model(seed=2)
    assert not _same(model, base_model), "two seeds, two initialisations"
    start = warm_start.start_from(model, base_dir)
    assert start.warm and start.base_model == os.path.dirname(base_dir)
    assert _same(model, base_model)
    assert start.describe() == f"warm start from {os.path.dirname(base_dir)}"


def test_a_changed_architecture_starts_fresh_and_says_why(base):
    _, base_dir = base
    model = _model(seed=2, input_size=48)
    initial = model.get_weights()
    start = warm_start.start_from(model, base_dir)
    assert not start.warm
    assert start.reason.startswith(f"the architecture changed since {os.path.dirname(base_dir)}: ")
    assert "kernel is (6400, 128) now, (2304, 128) in the base model" in start.reason, start.reason
    assert all(np.array_equal(u, v) for u, v in zip(model.get_weights(), initial, strict=True))


@pytest.mark.parametrize(
    "enabled, base_dir, reason",
    [(False, "base", warm_start.SWITCHED_OFF), (True, None, warm_start.NO_BASE_MODEL)],
)
def test_switched_off_or_without_a_blessed_model_training_starts_fresh(base, enabled, base_dir, reason):
    model = _model(seed=2)
    start = warm_start.start_from(model, base[1] if base_dir else None, enabled=enabled)
    assert (start.warm, start.reason) == (False, reason)
    assert not _same(model, base[0])
    assert start.describe() == f"fresh start: {reason}"


def test_a_base_model_that_cannot_be_loaded_means_a_fresh_start(tmp_path):
    (tmp_path / "keras").mkdir()
    (tmp_path / "keras" / "model.keras").write_bytes(b"not a keras archive")
    start = warm_start.start_from(_model(seed=2), str(tmp_path / export.SERVING_DIR))
    assert not start.warm and start.reason.startswith(f"the base model {tmp_path} cannot be loaded: ")


def test_the_record_round_trips_through_the_eval_metrics_json():
    for point in (warm_start.StartingPoint("/root/Trainer.x/model/7"), warm_start.StartingPoint(reason="why")):
        assert warm_start.StartingPoint.from_dict(point.to_dict()) == point


def test_each_new_locator_finds_its_counterpart_in_the_base_models_mean_map(tmp_path):
    keras.utils.set_random_seed(3)
    members = [locator.build_locator() for _ in range(2)]
    model = _model(seed=1)
    export.save_keras(model, str(tmp_path), locator.mean_map(members))
    bases, start = warm_start.base_locators(str(tmp_path / export.SERVING_DIR), 2)
    assert start.base_model == str(tmp_path) and len(bases) == 2
    for saved, member in zip(bases, members, strict=True):
        fresh = locator.build_locator()
        assert warm_start.carry_weights(fresh, saved, start.base_model).warm
        assert _same(fresh, member)
    export.save_keras(model, str(tmp_path / "plain"))
    assert warm_start.base_locators(str(tmp_path / "plain" / export.SERVING_DIR), 2) == (
        [],
        warm_start.StartingPoint(reason=f"the base model {tmp_path / 'plain'} has no locator"),
    )
