"""Loaded model versions and the registry that keeps them in step with the model base paths.

The registry follows TF Serving's rules: each model has a base path whose
integer-named subfolders are versions; a version policy (`latest N`, `all`,
`specific`) decides which are served; labels (`stable`, `canary`) name
versions. A new version is loaded and warmed up before it is published and
before any old one is dropped, and a request holds on to the version it
resolved, so a swap drops no request.
"""

import dataclasses
import logging
import os
import threading
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_pb2
from tensorflow_serving.config import file_system_storage_path_source_pb2, model_server_config_pb2

from deepfake_detection import warmup
from serving.model_server.model_config import available_versions

DEFAULT_SIGNATURE = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
# TF Serving's --max_num_load_retries: a version caught half-copied by a push loads on a later poll.
MAX_LOAD_ATTEMPTS = 6


class NotFoundError(LookupError):
    """An unknown model or version; answered with 404 / NOT_FOUND."""


class UnrecognizedLabelError(ValueError):
    """A version label the model's config does not define: 400 / INVALID_ARGUMENT, as TF Serving answers."""


class SignatureNotFoundError(ValueError):
    """A signature the model does not have: 400 / FAILED_PRECONDITION, as TF Serving answers."""


@dataclasses.dataclass(frozen=True)
class Signature:
    inputs: Mapping[str, tf.TensorSpec]
    outputs: Mapping[str, tf.TensorSpec]
    function: object


class LoadedVersion:
    """One SavedModel version, callable through its signatures."""

    def __init__(self, name: str, version: int, path: str):
        self.name = name
        self.version = version
        self.path = path
        self._model = tf.saved_model.load(path)
        self.signatures: Dict[str, Signature] = {
            key: Signature(
                inputs=dict(fn.structured_input_signature[1]),
                outputs=dict(fn.structured_outputs),
                function=fn,
            )
            for key, fn in self._model.signatures.items()
        }
        self.signature_defs = _signature_defs(path)

    def signature(self, name: str) -> Signature:
        key = name or DEFAULT_SIGNATURE
        if key not in self.signatures:
            raise SignatureNotFoundError(f'Serving signature key "{key}" not found; have {sorted(self.signatures)}')
        return self.signatures[key]

    def predict(
        self, signature_name: str, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()
    ) -> Dict[str, np.ndarray]:
        """Runs one signature; raises ValueError (a bad request) when the inputs do not fit it."""
        signature = self.signature(signature_name)
        if set(inputs) != set(signature.inputs):
            raise ValueError(f"Inputs {sorted(inputs)} do not match the signature's {sorted(signature.inputs)}")
        unknown = sorted(set(output_filter) - set(signature.outputs))
        if unknown:
            raise ValueError(f"output_filter names unknown outputs {unknown}; have {sorted(signature.outputs)}")
        tensors = {}
        for key, spec in signature.inputs.items():
            value = tf.constant(inputs[key], dtype=spec.dtype)
            if not spec.shape.is_compatible_with(value.shape):
                raise ValueError(f"Input {key!r} has shape {value.shape}; the signature expects {spec.shape}")
            tensors[key] = value
        try:
            outputs = signature.function(**tensors)
        except (tf.errors.InvalidArgumentError, TypeError) as e:
            raise ValueError(str(e).strip().splitlines()[0]) from e
        names = output_filter or list(outputs)
        return {key: outputs[key].numpy() for key in names}

    def warm_up(self) -> int:
        """Replays the stored warm-up requests; returns how many ran."""
        count = 0
        for request in warmup.read_warmup_requests(self.path):
            inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
            self.predict(request.model_spec.signature_name, inputs)
            count += 1
        return count


def _signature_defs(path: str) -> Dict[str, meta_graph_pb2.SignatureDef]:
    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    meta_graph = saved_model.meta_graphs[0]
    return {key: meta_graph.signature_def[key] for key in meta_graph.signature_def if not key.startswith("__")}


def wanted_versions(
    policy: file_system_storage_path_source_pb2.FileSystemStoragePathSourceConfig.ServableVersionPolicy,
    available: Sequence[int],
) -> List[int]:
    """The versions a policy serves among those on disk (TF Serving's default: the latest one)."""
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return list(available)
    if kind == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions else 1
    return list(available)[-count:]


class ServedModel:
    """One model of the config: its served versions, labels and load errors."""

    def __init__(self, model_config: model_server_config_pb2.ModelConfig):
        self.config = model_config
        self.versions: Dict[int, LoadedVersion] = {}
        self.errors: Dict[int, str] = {}
        self._attempts: Dict[int, int] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def sync(self) -> None:
        """Loads (and warms up) wanted versions first, then publishes, then drops the unwanted ones."""
        wanted = wanted_versions(self.config.model_version_policy, available_versions(self.config.base_path))
        loaded = dict(self.versions)
        for version in wanted:
            if version in loaded or self._attempts.get(version, 0) >= MAX_LOAD_ATTEMPTS:
                continue
            path = os.path.join(self.config.base_path, str(version))
            self._attempts[version] = self._attempts.get(version, 0) + 1
            try:
                candidate = LoadedVersion(self.name, version, path)
                warmed = candidate.warm_up()
            except Exception as e:  # noqa: BLE001 - any broken SavedModel is reported in the model status
                logging.warning("Could not load %s version %d from %s: %s", self.name, version, path, e)
                self.errors[version] = f"{type(e).__name__}: {e}"
                continue
            logging.info("Loaded %s version %d (%d warm-up requests)", self.name, version, warmed)
            self.errors.pop(version, None)
            loaded[version] = candidate
        self.versions = {v: loaded[v] for v in sorted(loaded) if v in wanted}

    def resolve(self, version: Optional[int] = None, label: Optional[str] = None) -> LoadedVersion:
        versions = self.versions
        if label:
            if label not in self.config.version_labels:
                raise UnrecognizedLabelError(f"Unrecognized servable version label: {label}")
            version = self.config.version_labels[label]
        if version is None:
            if not versions:
                raise NotFoundError(f"Servable not found for request: Latest({self.name})")
            return versions[max(versions)]
        if version not in versions:
            raise NotFoundError(f"Servable not found for request: Specific({self.name}, {version})")
        return versions[version]

    def status(
        self, version: Optional[int] = None, label: Optional[str] = None
    ) -> get_model_status_pb2.GetModelStatusResponse:
        """TF Serving's model status: AVAILABLE per served version, END with the error per failed one."""
        response = get_model_status_pb2.GetModelStatusResponse()
        if label or version is not None:
            wanted = [self.resolve(version, label).version]
        else:
            wanted = sorted(set(self.versions) | set(self.errors))
        if not wanted:
            raise NotFoundError(f"Could not find any versions of model {self.name}")
        for v in wanted:
            entry = response.model_version_status.add(version=v)
            if v in self.versions:
                entry.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
                entry.status.SetInParent()
            else:
                entry.state = get_model_status_pb2.ModelVersionStatus.END
                entry.status.error_code = 13  # INTERNAL
                entry.status.error_message = self.errors[v]
        return response


class ModelRegistry:
    """All served models, re-synced with their base paths every `poll_seconds` by a background thread."""

    def __init__(self, server_config: model_server_config_pb2.ModelServerConfig, poll_seconds: float = 1.0):
        self._lock = threading.Lock()
        self._models: Dict[str, ServedModel] = {}
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.apply_config(server_config)

    def apply_config(self, server_config: model_server_config_pb2.ModelServerConfig) -> None:
        """Serves exactly the models of `server_config` (TF Serving's HandleReloadConfigRequest)."""
        models = {}
        for model_config in server_config.model_config_list.config:
            if not model_config.name or not model_config.base_path:
                raise ValueError(f"Every model config needs a name and a base_path: {model_config}")
            existing = self._models.get(model_config.name)
            model = existing if existing and existing.config == model_config else ServedModel(model_config)
            if existing and model is not existing:
                model.versions = dict(existing.versions)
            model.sync()
            _check_labels(model)
            models[model_config.name] = model
        with self._lock:
            self._models = models

    def model(self, name: str) -> ServedModel:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise NotFoundError(f"Servable not found for request: Latest({name})")
        return model

    def names(self) -> List[str]:
        with self._lock:
            return sorted(self._models)

    def poll_once(self) -> None:
        with self._lock:
            models = list(self._models.values())
        for model in models:
            model.sync()

    def start(self) -> None:
        if self._thread is None and self._poll_seconds > 0:
            self._thread = threading.Thread(target=self._poll, name="version-poller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - a failed poll is logged and retried; serving goes on
                logging.exception("Polling the model base paths failed")


def _check_labels(model: ServedModel) -> None:
    for label, version in model.config.version_labels.items():
        if version not in model.versions:
            raise ValueError(
                f"Model {model.name!r}: label {label!r} points to version {version}, which is not served "
                f"(served: {sorted(model.versions)})"
            )


def model_spec(version: LoadedVersion, signature_name: str = "") -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=version.name, signature_name=signature_name)
    spec.version.value = version.version
    return spec
