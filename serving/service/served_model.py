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
"""

import re
import time
from typing import List, Optional, Sequence

from deepfake_detection import contract
from deepfake_detection.component_ids import ENSEMBLE_MODEL
from serving.client.tf_serving import GrpcClient, ModelTarget, ServingError

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
