"""Executor of ModelCard: score the test split, measure the operating point, write the card."""

import json
import logging
import os
from typing import Any, Dict, List, Optional

from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from components.ensemble import ensemble  # noqa: F401 - registers the ensemble's layer for Keras
from components.model_card import training_statistics
from deepfake_detection import contract, edge_runtime
from deepfake_detection.evaluation import model_card, operating_point, report
from deepfake_detection.models import export, video_scoring


def _report_rows(ingest_report: types.Artifact) -> List[dict]:
    with open(os.path.join(ingest_report.uri, contract.REPORT_FILE_NAME)) as f:
        return [json.loads(line) for line in f if line.strip()]


def pushed_version_folder(pushed_model: Optional[types.Artifact]) -> Optional[str]:
    """The folder the Pusher copied the model to, or None when it pushed nothing."""
    if pushed_model is None or not pushed_model.get_int_custom_property("pushed"):
        return None
    return pushed_model.get_string_custom_property("pushed_destination") or None


def test_rates(
    model_uri: str, fitted: Optional[dict], test_patterns: List[str], clip_length: int, rule: str
) -> Optional[dict]:
    """What the model's fitted operating point achieves on the test split's videos, or None without a point."""
    if fitted is None:
        return None
    model = export.load_keras(model_uri)
    videos = video_scoring.score_videos(video_scoring.keras_scorer(model), test_patterns, clip_length)
    point = operating_point.OperatingPoint.from_dict(fitted)
    return operating_point.rates(point, [v.score(rule) for v in videos], [v.label for v in videos])


class Executor(base_executor.BaseExecutor):
    def Do(
        self,
        input_dict: Dict[str, List[types.Artifact]],
        output_dict: Dict[str, List[types.Artifact]],
        exec_properties: Dict[str, Any],
    ) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        split = exec_properties["test_split"]
        # Every span of the evaluation window: one examples artifact each.
        test_patterns = [os.path.join(uri, "*") for uri in artifact_utils.get_split_uris(input_dict["examples"], split)]
        training = json.loads(exec_properties["training_settings"])
        rule = training.get("video_rule", "mean")
        fitted = export.read_operating_point(os.path.join(model.uri, export.SERVING_DIR))
        rates = test_rates(model.uri, fitted, test_patterns, exec_properties["clip_length"], rule)
        blessing = artifact_utils.get_single_instance(input_dict["blessing"])
        pushed = pushed_version_folder(next(iter(input_dict.get("pushed_model") or []), None))
        evaluation = artifact_utils.get_single_instance(input_dict["evaluation"])
        card = model_card.build_card(
            model_name=exec_properties["model_name"],
            version=int(os.path.basename(pushed.rstrip("/"))) if pushed else None,
            training=training,
            data=model_card.training_data(
                _report_rows(artifact_utils.get_single_instance(input_dict["ingest_report"])),
                training.get("fake_source", contract.DEFAULT_FAKE_SOURCE),
            ),
            evaluation={"split": split, **report.overall_metrics(evaluation.uri)},
            fitted_point=fitted,
            test_rates=rates,
            blessed=report.is_blessed(blessing.uri),
            training_start=report.training_start(export.read_eval_metrics(model.uri) or {}),
            forgetting=report.forgetting_guard(evaluation.uri),
        )
        edge_folder = edge_runtime.edge_folder(os.path.join(model.uri, export.SERVING_DIR))
        card["edge_exports"] = edge_runtime.read_json(edge_folder, contract.EDGE_REPORT_FILE)
        output = artifact_utils.get_single_instance(output_dict["model_card"])
        written = model_card.write_card(output.uri, card)
        if pushed:
            written += model_card.write_card(pushed, card)
            for statistics in input_dict.get("statistics") or []:
                split = artifact_utils.get_split_uri([statistics], training_statistics.TRAINING_SPLIT)
                path = os.path.join(split, training_statistics.STATISTICS_FILE)
                written += training_statistics.write_training_statistics(path, pushed)
        logging.info("Model card written: %s", written)
