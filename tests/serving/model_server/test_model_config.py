"""models.config, batching and monitoring files: what TF Serving reads, generated from settings."""

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.model_server import model_config
from serving.model_server.servables import wanted_versions


def test_models_config_round_trips_with_policies_and_labels(tmp_path):
    models = [
        model_config.ServingModel("meso4", str(tmp_path / "meso4"), num_versions=2),
        model_config.release("ensemble", str(tmp_path / "ensemble"), stable=3, canary=5),
    ]
    paths = model_config.write_serving_configs(str(tmp_path / "config"), models)
    parsed = model_config.read_models_config(paths[model_config.MODELS_CONFIG_FILE])
    meso4, ensemble = parsed.model_config_list.config
    assert meso4.name == "meso4" and meso4.base_path == str(tmp_path / "meso4")
    assert meso4.model_platform == "tensorflow" and meso4.model_version_policy.latest.num_versions == 2
    assert list(ensemble.model_version_policy.specific.versions) == [3, 5]
    assert dict(ensemble.version_labels) == {"stable": 3, "canary": 5}


def test_rollback_pins_one_version():
    pinned = model_config.model_server_config([model_config.release("m", "/models/m", stable=3)])
    [entry] = pinned.model_config_list.config
    assert list(entry.model_version_policy.specific.versions) == [3] and dict(entry.version_labels) == {"stable": 3}
    assert wanted_versions(entry.model_version_policy, [1, 2, 3, 4]) == [3]


@pytest.mark.parametrize(
    "text, available, expected",
    [
        ("", [1, 2, 3], [3]),
        ("latest { num_versions: 2 }", [1, 2, 3], [2, 3]),
        ("all { }", [1, 2, 3], [1, 2, 3]),
        ("specific { versions: 1 versions: 7 }", [1, 2, 3], [1]),
        ("", [], []),
    ],
)
def test_version_policies_choose_like_tf_serving(text, available, expected):
    policy = text_format.Parse(text, model_server_config_pb2.ModelConfig().model_version_policy.__class__())
    assert wanted_versions(policy, available) == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "bad name"}, "Invalid model name"),
        ({"num_versions": 0}, "num_versions"),
        ({"labels": {"stable": 1}}, "need specific versions"),
        ({"versions": (1,), "labels": {"canary": 2}}, "point outside"),
    ],
)
def test_invalid_models_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_config.ServingModel(**{"name": "m", "base_path": "/m", **kwargs})


def test_batching_and_monitoring_files():
    text = model_config.batching_parameters_text(model_config.BatchingSettings(max_batch_size=16, num_batch_threads=2))
    assert "max_batch_size { value: 16 }" in text and "num_batch_threads { value: 2 }" in text
    assert "batch_timeout_micros { value: 0 }" in text and "max_enqueued_batches { value: 100 }" in text
    monitoring = model_config.monitoring_config_text()
    assert model_config.prometheus_path(monitoring) == model_config.PROMETHEUS_PATH
    assert model_config.prometheus_path(monitoring.replace("true", "false")) is None
