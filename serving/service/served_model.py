"""Which model to use when none is named: the one the model server has.

The main job pushes `blend_resnet` alone by default, and `ensemble` beside its
members only when asked; a service fixed on one name would answer "Servable not
found" after the other. So with no model name the service and the command line
take the model that is there: the only one, or `ensemble` when it is one of
several. Any other set is ambiguous, and they stop with an error naming the
choices rather than guess.

TF Serving has no call that lists its models, so the names come from:

- the model server's config file, when given (`--model-config-file`: the
  `models.config` that `pipeline_runner.py serve` writes under
  `outputs/serving_config/`, or a deployment's ConfigMap);
- else the names a model of this project can have (every registered backbone
  and `ensemble`), each asked for its status over gRPC (`GetModelStatus`):
  NOT_FOUND means not served. This works against TF Serving and the local model
  server alike, and a model server that is still starting is waited for.

A pushed folder (`outputs/serving_models/<model>/<version>/`) is chosen from by
the same rule (`choose`).

Once chosen, the service calls the model through `ModelServerCircuit`: a model
server that stops answering (down or frozen) opens the circuit, so uploads are
refused at once instead of each waiting for its deadline, and readiness is
answered from the last probe instead of a call that may hang (docs/faults.md).
"""

import logging
import math
import re
import threading
import time
from typing import Any, List, Optional, Sequence, Tuple

from deepfake_detection import contract
from deepfake_detection.component_ids import ENSEMBLE_MODEL
from serving.client.tf_serving import UNREACHABLE_CODES, GrpcClient, ModelTarget, ServingError
from serving.protocol.tf_serving_api import ModelVersionStatus

# How long to wait for a model server that does not answer yet (one that is loading its models).
WAIT_S = 120.0
_POLL_S = 1.0
_CALL_TIMEOUT_S = 10.0


class ModelChoiceError(ValueError):
    """No model, or several without an ensemble among them: the caller must name one."""


def choose(names: Sequence[str], where: str) -> str:
    """The only model of `names`, or the ensemble when it is one of them; `where` names the source in errors."""
    served = sorted(set(names))
    if len(served) == 1:
        return served[0]
    if ENSEMBLE_MODEL in served:
        return ENSEMBLE_MODEL
    if not served:
        raise ModelChoiceError(f"{where} has no model: push one with `pipeline_runner.py local` first")
    raise ModelChoiceError(f"{where} has the models {served} and none is {ENSEMBLE_MODEL!r}: name one of them")


# A model's `name` in a TF Serving model config (text format): the only field of that config so named.
_CONFIG_NAME = re.compile(r'^\s*name\s*:\s*"([^"]+)"', re.MULTILINE)


def names_in_config(path: str) -> List[str]:
    """The model names of a TF Serving model config file (`models.config`), read without TensorFlow's protos
    (the detection service's image has none)."""
    with open(path) as f:
        return _CONFIG_NAME.findall(f.read())


def candidate_names() -> List[str]:
    """Every name the pipeline can push a model under: its backbones and the ensemble."""
    return sorted(contract.BACKBONE_NAMES) + [ENSEMBLE_MODEL]


def served_names(address: str, candidates: Sequence[str], wait_s: float = WAIT_S) -> List[str]:
    """The candidates the model server at `address` (gRPC) knows, waiting up to `wait_s` for it to answer."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return [name for name in candidates if _is_served(address, name)]
        except ServingError as e:
            if time.monotonic() >= deadline:
                raise ModelChoiceError(f"the model server at {address} did not answer in {wait_s:.0f} s: {e}") from e
            time.sleep(_POLL_S)


def _is_served(address: str, name: str) -> bool:
    client = GrpcClient(address, ModelTarget(name), timeout_s=_CALL_TIMEOUT_S)
    try:
        client.status()
        return True
    except ServingError as e:
        if e.status == "NOT_FOUND":
            return False
        raise
    finally:
        client.close()


def resolve(address: str, config_file: Optional[str] = None, wait_s: float = WAIT_S) -> str:
    """The model to use on the model server at `address`: from its config file when given, else by asking it."""
    if config_file:
        return choose(names_in_config(config_file), f"the model config {config_file}")
    return choose(served_names(address, candidate_names(), wait_s), f"the model server at {address}")


# What users read when the model server does not answer: the cause, never its address or gRPC's details.
UNAVAILABLE_MESSAGE = "model server unavailable"


class ModelServerCircuit:
    """The model server's client behind a circuit breaker, and its readiness from a cached probe.

    A call that finds the model server unreachable (UNAVAILABLE, DEADLINE_EXCEEDED) opens the circuit: from
    then on calls fail at once with `UNAVAILABLE_MESSAGE`, and a thread probes the model server (its model's
    status, within `probe_timeout_s`) every `probe_interval_s` until a probe finds a version AVAILABLE, which
    closes it. `ready()` answers from the last probe; one older than `probe_interval_s` is refreshed in the
    background, so readiness never waits for a model server that hangs. Thread-safe.
    """

    def __init__(self, client: Any, probe_interval_s: float = 1.0, probe_timeout_s: float = 1.0):
        self.client = client
        self.probe_interval_s = probe_interval_s
        self.probe_timeout_s = probe_timeout_s
        self._lock = threading.Lock()
        self._open = False
        self._prober: Optional[threading.Thread] = None
        self._refreshing = False
        # (ready, reason, monotonic time) of the last probe; None before the first.
        self._probe: Optional[Tuple[bool, str, float]] = None

    @property
    def is_open(self) -> bool:
        return self._open

    def retry_after_s(self) -> int:
        """Whole seconds until the next probe may have closed the circuit."""
        return max(1, math.ceil(self.probe_interval_s))

    def predict(self, images: Sequence[bytes]) -> Any:
        return self._guarded(self.client.predict, images)

    def explain(self, images: Sequence[bytes]) -> Any:
        return self._guarded(self.client.explain, images)

    def status(self) -> Any:
        return self._guarded(self.client.status)

    def _guarded(self, call: Any, *args: Any) -> Any:
        if self._open:
            raise ServingError("UNAVAILABLE", UNAVAILABLE_MESSAGE)
        try:
            return call(*args)
        except ServingError as e:
            if e.status in UNREACHABLE_CODES:
                logging.warning("The model server did not answer (%s: %s): circuit open", e.status, e.message)
                self._trip()
                raise ServingError(e.status, UNAVAILABLE_MESSAGE) from e
            raise

    def _trip(self) -> None:
        with self._lock:
            self._open = True
            self._probe = (False, UNAVAILABLE_MESSAGE, time.monotonic())
            if self._prober is None:
                self._prober = threading.Thread(target=self._probe_until_closed, name="model-probe", daemon=True)
                self._prober.start()

    def _probe_until_closed(self) -> None:
        while True:
            started = time.monotonic()
            if self._run_probe():
                with self._lock:
                    self._open, self._prober = False, None
                logging.info("The model server answers again: circuit closed")
                return
            time.sleep(max(0.0, self.probe_interval_s - (time.monotonic() - started)))

    def _run_probe(self) -> bool:
        """Asks the model server for its model's status; records and returns whether a version is AVAILABLE."""
        try:
            states = [s.state for s in self.client.status(timeout_s=self.probe_timeout_s).model_version_status]
            ready = ModelVersionStatus.AVAILABLE in states
            reason = "" if ready else "no version of the model is AVAILABLE"
        except ServingError as e:
            logging.debug("Model server probe failed: %s", e)
            ready = False
            reason = UNAVAILABLE_MESSAGE if e.status in UNREACHABLE_CODES else f"the model server answered {e.status}"
        self._probe = (ready, reason, time.monotonic())
        return ready

    def ready(self) -> Tuple[bool, str]:
        """(ready, reason if not) from the last probe: the first is made now (within the probe's timeout), a stale
        one is refreshed in the background and answered meanwhile."""
        probe = self._probe
        if probe is None:
            self._run_probe()
            probe = self._probe
        elif time.monotonic() - probe[2] > self.probe_interval_s and not self._open:
            self._refresh_in_background()
        return probe[0], probe[1]

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True

        def refresh() -> None:
            try:
                if not self._run_probe() and self._probe and self._probe[1] == UNAVAILABLE_MESSAGE:
                    self._trip()
            finally:
                self._refreshing = False

        threading.Thread(target=refresh, name="model-ready-probe", daemon=True).start()
