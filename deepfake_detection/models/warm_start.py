"""Warm start: a Trainer begins from the weights of the latest blessed model of its backbone.

Continuous training retrains every backbone on each new span; starting from
the last blessed model's weights, it needs a few epochs
(`TrainingConfig.warm_start_epochs`) where a fresh start needs the whole
recipe (docs/warm-start.md). The weights are carried only when the new
model has the same layers and the same weight shapes as the base: a changed
architecture (another input size, head width, backbone version), a base that
cannot be loaded, no blessed model yet or the switch turned off all start
fresh, and the reason is recorded (`StartingPoint`) for the run summary and
the model card.
"""

import dataclasses
import logging
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

import keras

from deepfake_detection.models import export, locator

# Where a trained model records where its training started, beside its eval metrics (`export.write_eval_metrics`).
START_KEY = "start"
LOCATOR_START_KEY = "locator_start"
EPOCHS_TRAINED_KEY = "epochs_trained"
# A warm start continues at this fraction of the learning rate, as fine-tuning does: a fresh Adam at the full rate
# undid the base's lead within two epochs in the bench (docs/warm-start.md).
LEARNING_RATE_FACTOR = 0.1
SWITCHED_OFF = "warm start switched off (--no-warm-start)"
NO_BASE_MODEL = "no blessed model of this backbone yet"


@dataclasses.dataclass(frozen=True)
class StartingPoint:
    """Where one training began: the weights of a blessed model (`base_model`, its artifact's URI), or a fresh
    start and why (`reason`)."""

    base_model: Optional[str] = None
    reason: str = ""

    @property
    def warm(self) -> bool:
        return self.base_model is not None

    def describe(self) -> str:
        return f"warm start from {self.base_model}" if self.warm else f"fresh start: {self.reason}"

    def to_dict(self) -> Dict[str, Any]:
        return {"base_model": self.base_model, "reason": self.reason, "warm": self.warm}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "StartingPoint":
        return cls(values.get("base_model"), values.get("reason", ""))


def architecture_mismatch(model: keras.Model, base: keras.Model) -> str:
    """Why `base`'s weights cannot be copied into `model` (other layers, other weight shapes); "" when they can."""
    kinds = [type(layer).__name__ for layer in model.layers]
    base_kinds = [type(layer).__name__ for layer in base.layers]
    if kinds != base_kinds:
        return f"{len(base_kinds)} layers in the base model ({', '.join(base_kinds)}), {len(kinds)} now"
    if len(model.weights) != len(base.weights):
        return f"{len(base.weights)} weights in the base model, {len(model.weights)} now"
    for weight, base_weight in zip(model.weights, base.weights, strict=True):
        if tuple(weight.shape) != tuple(base_weight.shape):
            return f"{weight.path} is {tuple(weight.shape)} now, {tuple(base_weight.shape)} in the base model"
    return ""


def carry_weights(model: keras.Model, base: keras.Model, base_name: str) -> StartingPoint:
    """Copies `base`'s weights into `model` when the architecture matches; else leaves `model` as built."""
    mismatch = architecture_mismatch(model, base)
    if mismatch:
        point = StartingPoint(reason=f"the architecture changed since {base_name}: {mismatch}")
    else:
        model.set_weights(base.get_weights())
        point = StartingPoint(base_model=base_name)
    logging.info("%s: %s", model.name, point.describe())
    return point


def base_model_uri(base_model_dir: str) -> str:
    """The Model artifact's folder of the `base_model` path TFX's Trainer passes (its `Format-Serving` SavedModel)."""
    return os.path.dirname(base_model_dir.rstrip("/"))


def _fresh_reason(base_model_dir: Optional[str], enabled: bool) -> str:
    """Why training starts fresh before any model is loaded; "" when there is a base model to try."""
    if not enabled:
        return SWITCHED_OFF
    return "" if base_model_dir else NO_BASE_MODEL


def start_from(model: keras.Model, base_model_dir: Optional[str], enabled: bool = True) -> StartingPoint:
    """Starts `model` from the weights of the blessed model at `base_model_dir` (TFX's `fn_args.base_model`)
    when there is one, warm start is `enabled` and the architecture matches; else says why it starts fresh."""
    reason = _fresh_reason(base_model_dir, enabled)
    if reason:
        return StartingPoint(reason=reason)
    uri = base_model_uri(base_model_dir)
    try:
        base = export.load_keras(uri)
    except (OSError, ValueError, TypeError) as error:
        point = StartingPoint(reason=f"the base model {uri} cannot be loaded: {error}")
        logging.warning("%s: %s", model.name, point.describe())
        return point
    return carry_weights(model, base, uri)


def base_locators(
    base_model_dir: Optional[str], members: int, enabled: bool = True
) -> Tuple[List[keras.Model], StartingPoint]:
    """The base model's `members` locators to start new ones from (`locator.mean_map` wraps each as
    `locator_<n>`) and the base's URI; or no locators and why the new ones start fresh."""
    reason = _fresh_reason(base_model_dir, enabled)
    if reason:
        return [], StartingPoint(reason=reason)
    uri = base_model_uri(base_model_dir)
    try:
        saved = export.load_locator(uri)
    except (OSError, ValueError, TypeError) as error:
        return [], StartingPoint(reason=f"the locator of {uri} cannot be loaded: {error}")
    if saved is None:
        return [], StartingPoint(reason=f"the base model {uri} has no locator")
    if members == 1:
        return [saved], StartingPoint(base_model=uri)
    layers = {layer.name: layer for layer in saved.layers}
    found = [layers.get(f"{locator.NAME}_{number}") for number in range(members)]
    if None in found:
        return [], StartingPoint(reason=f"the base model {uri} has other locators than {members}")
    return found, StartingPoint(base_model=uri)
