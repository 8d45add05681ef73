"""TensorFlow Serving's configuration files, generated from the pipeline's settings.

- `models.config`: a ModelServerConfig text proto, one entry per pushed model,
  with its version policy (`latest N`, or `specific` versions to pin a
  rollback) and version labels (`stable`, `canary`);
- the batching parameters file (`--batching_parameters_file`);
- the monitoring config (`--monitoring_config_file`) exposing Prometheus metrics.
The same files drive the real `tensorflow_model_server` and the local one.
"""

import argparse
import dataclasses
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

MODELS_CONFIG_FILE = "models.config"
BATCHING_FILE = "batching_parameters.txt"
MONITORING_FILE = "monitoring.config"
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
STABLE = "stable"
CANARY = "canary"


@dataclasses.dataclass(frozen=True)
class ServingModel:
    """One model under `<base>/<name>/<version>/`.

    With `versions` set, exactly those are served (a rollback pins the old
    version); otherwise the latest `num_versions`. `labels` maps a label to one
    of the served versions.
    """

    name: str
    base_path: str
    num_versions: int = 1
    versions: Tuple[int, ...] = ()
    labels: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise ValueError(f"Invalid model name {self.name!r}: use letters, digits, '_', '.', '-'")
        if self.num_versions < 1:
            raise ValueError(f"Model {self.name!r}: num_versions={self.num_versions} must be >= 1")
        if self.labels and not self.versions:
            raise ValueError(f"Model {self.name!r}: labels {dict(self.labels)} need specific versions to point at")
        stray = {k: v for k, v in self.labels.items() if v not in self.versions}
        if stray:
            raise ValueError(f"Model {self.name!r}: labels {stray} point outside the served versions {self.versions}")


@dataclasses.dataclass(frozen=True)
class BatchingSettings:
    """Server-side batching: timeout 0 on CPU, a few milliseconds on GPU; threads = cores."""

    max_batch_size: int = 32
    batch_timeout_micros: int = 0
    num_batch_threads: int = 4
    max_enqueued_batches: int = 100


def available_versions(base_path: str) -> List[int]:
    """Integer-named subfolders of a base path that hold a saved_model.pb, in ascending order."""
    if not tf.io.gfile.isdir(base_path):
        return []
    versions = []
    for entry in tf.io.gfile.listdir(base_path):
        entry = entry.rstrip("/")
        if entry.isdigit() and tf.io.gfile.exists(os.path.join(base_path, entry, "saved_model.pb")):
            versions.append(int(entry))
    return sorted(versions)


def discover_models(serving_dir: str) -> List[str]:
    """Names of the models pushed under `serving_dir` (folders holding at least one version)."""
    if not tf.io.gfile.isdir(serving_dir):
        return []
    names = [entry.rstrip("/") for entry in tf.io.gfile.listdir(serving_dir)]
    return sorted(n for n in names if available_versions(os.path.join(serving_dir, n)))


def _absolute(path: str) -> str:
    """Local paths made absolute; object storage URLs (gs://, s3://) kept as they are."""
    return path if "://" in path else os.path.abspath(path)


def model_server_config(models: Sequence[ServingModel]) -> model_server_config_pb2.ModelServerConfig:
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"Model names must be unique: {names}")
    server_config = model_server_config_pb2.ModelServerConfig()
    for model in models:
        entry = server_config.model_config_list.config.add(
            name=model.name, base_path=_absolute(model.base_path), model_platform="tensorflow"
        )
        if model.versions:
            entry.model_version_policy.specific.versions.extend(sorted(model.versions))
        else:
            entry.model_version_policy.latest.num_versions = model.num_versions
        for label, version in sorted(model.labels.items()):
            entry.version_labels[label] = version
    return server_config


def release(name: str, base_path: str, stable: int, canary: Optional[int] = None) -> ServingModel:
    """`stable` (and `canary`, when given) served side by side under their labels; `stable` alone is a pin."""
    labels: Dict[str, int] = {STABLE: stable}
    if canary is not None:
        labels[CANARY] = canary
    return ServingModel(name, base_path, versions=tuple(sorted(set(labels.values()))), labels=labels)


def read_models_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    with open(path) as f:
        return text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())


def batching_parameters_text(settings: BatchingSettings) -> str:
    return "".join(f"{name} {{ value: {value} }}\n" for name, value in dataclasses.asdict(settings).items())


def monitoring_config_text(path: str = PROMETHEUS_PATH) -> str:
    return f'prometheus_config {{\n  enable: true\n  path: "{path}"\n}}\n'


def prometheus_path(monitoring_config: str) -> Optional[str]:
    """The Prometheus path of a monitoring config's text; None when Prometheus is not enabled."""
    if not re.search(r"enable\s*:\s*true", monitoring_config):
        return None
    match = re.search(r'path\s*:\s*"([^"]+)"', monitoring_config)
    return match.group(1) if match else PROMETHEUS_PATH


def write_serving_configs(
    output_dir: str, models: Sequence[ServingModel], batching: BatchingSettings = BatchingSettings()
) -> Dict[str, str]:
    """Writes the three files into `output_dir`; returns {file name: path}."""
    os.makedirs(output_dir, exist_ok=True)
    texts = {
        MODELS_CONFIG_FILE: text_format.MessageToString(model_server_config(models)),
        BATCHING_FILE: batching_parameters_text(batching),
        MONITORING_FILE: monitoring_config_text(),
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = os.path.join(output_dir, name)
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def write_deployment_configs(args: argparse.Namespace) -> int:
    """Writes the files the `model-config` verb names and prints their paths."""
    models = [ServingModel(name, f"{args.base_path.rstrip('/')}/{name}") for name in args.models.split(",")]
    named = {"batch_timeout_micros": args.batch_timeout_micros, "num_batch_threads": args.num_batch_threads}
    batching = BatchingSettings(**{name: value for name, value in named.items() if value is not None})
    for path in write_serving_configs(args.output, models, batching).values():
        print(path)
    return 0
