"""Executor of EnsembleTrainer: predict the eval split with each member, fit weights, export."""

import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import keras
import numpy as np
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.ensemble.ensemble import MEMBER_KEY_PREFIX, build_ensemble, fit_weights
from deepfake_detection import contract
from deepfake_detection.evaluation.video_scores import log_loss
from deepfake_detection.models import data, edge, export, video_scoring
from deepfake_detection.models.locator import mean_map


def load_member(model_artifact: types.Artifact) -> keras.Model:
    return keras.models.load_model(export.keras_path(model_artifact.uri))


def eval_predictions(
    members: List[keras.Model], eval_patterns: List[str], batch_size: int, fake_source: Optional[data.FakeSource] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """([members, examples] probabilities, labels) on the eval split, read once."""
    probabilities = [[] for _ in members]
    labels = []
    for pixels, batch_labels in data.dataset(eval_patterns, batch_size, training=False, fake_source=fake_source):
        labels.append(batch_labels.numpy())
        for row, member in zip(probabilities, members, strict=True):
            row.append(member(pixels, training=False).numpy().ravel())
    if not labels:
        raise ValueError(f"The eval split {eval_patterns} has no examples to fit ensemble weights on")
    return np.array([np.concatenate(row) for row in probabilities]), np.concatenate(labels)


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        artifacts = [a for key, items in input_dict.items() if key.startswith(MEMBER_KEY_PREFIX) for a in items]
        members = sorted((load_member(a) for a in artifacts), key=lambda m: m.name)
        if len(members) < 2:
            raise ValueError(f"An ensemble needs at least two member models, got {len(members)}")
        fake_source = data.FakeSource.from_json(exec_properties.get("fake_source", ""))
        # Every span of the training window: one examples artifact each.
        eval_uris = artifact_utils.get_split_uris(input_dict["examples"], contract.EVAL_SPLIT)
        eval_patterns = [os.path.join(uri, "*") for uri in eval_uris]
        probabilities, labels = eval_predictions(members, eval_patterns, exec_properties["batch_size"], fake_source)
        weights = fit_weights(probabilities, labels)
        auc = keras.metrics.AUC()
        auc.update_state(labels, weights @ probabilities)
        summary = {
            "backbone": "ensemble",
            "auc": float(auc.result()),
            "members": [m.name for m in members],
            "weights": weights.tolist(),
            "member_eval_log_loss": [log_loss(p, labels) for p in probabilities],
            "ensemble_eval_log_loss": log_loss(weights @ probabilities, labels),
            "eval_examples": int(labels.size),
            contract.EVAL_FAKE_EXAMPLES: int(labels.sum()),
            contract.EVAL_REAL_EXAMPLES: int(labels.size - labels.sum()),
        }
        logging.info("Ensemble fitted: %s", summary)
        model = artifact_utils.get_single_instance(output_dict["model"])
        ensemble = build_ensemble(members, weights)
        fitted = video_scoring.fit_for_model(ensemble, eval_patterns)
        located = [found for found in (export.load_locator(a.uri) for a in artifacts) if found is not None]
        locator = mean_map(located) if located else None
        export.export_saved_model(ensemble, os.path.join(model.uri, export.SERVING_DIR), fitted=fitted, locator=locator)
        export.save_keras(ensemble, model.uri, locator)
        splits = _split_patterns(input_dict["examples"])
        checked = {s: splits[s] for s in edge.CHECK_SPLITS if s in splits}
        serving_dir = os.path.join(model.uri, export.SERVING_DIR)
        edge.write_checked_exports(ensemble, serving_dir, splits[contract.TRAIN_SPLIT], checked)
        export.write_eval_metrics(model.uri, summary)


def _split_patterns(examples: List[types.Artifact]) -> Dict[str, List[str]]:
    """{split: the file patterns of that split in every examples artifact (span) of the window that has it}."""
    patterns: Dict[str, List[str]] = {}
    for artifact in examples:
        for split in artifact_utils.decode_split_names(artifact.split_names):
            uri = artifact_utils.get_split_uri([artifact], split)
            patterns.setdefault(split, []).append(os.path.join(uri, "*"))
    return patterns
