"""End to end: the real pipeline factory on LocalDagRunner over tiny generated videos.

Asserts from ML Metadata that each component ran once and that the artifacts
are where the next stage reads them; a second run is served from the cache up
to the Trainers, which start from the first run's blessed models.
"""

import json
import os

import pytest
import tensorflow as tf
from ml_metadata import metadata_store
from tfx import v1 as tfx

from components.anomaly_gate import DataValidationResult
from components.video_example_gen.component import IngestReport
from deepfake_detection import contract, sample_data
from deepfake_detection.evaluation import model_card, report
from deepfake_detection.evaluation.eval_config import BlessingConfig
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.models import data, explain, export
from pipeline.pipeline import PipelineSettings, create_pipeline
from schemas import FACE_SCHEMA_PATH

BACKBONES = ("meso4", "compact_cnn")
MODELS = BACKBONES + ("ensemble",)
COMPONENTS = (
    {"VideoExampleGen", "ImportSchemaGen", "StatisticsGen", "ExampleValidator", "AnomalyGate"}
    | {f"{kind}.{name}" for kind in ("Tuner", "Trainer") for name in BACKBONES}
    | {"EnsembleTrainer"}
    | {f"{kind}.{name}" for kind in ("LatestBlessedModel", "Evaluator", "Pusher", "ModelCard") for name in MODELS}
)


@pytest.fixture(scope="module")
def e2e_dataset(tmp_path_factory):
    """8 one-second videos whose 4 identity groups split 3:1 between train and eval (seed 1)."""
    root = str(tmp_path_factory.mktemp("e2e_dataset"))
    sample_data.generate(root, num_videos=8, seed=1, seconds=1.0)
    return root


def _run(dataset, root):
    metadata_path = os.path.join(root, "metadata.sqlite")
    pipeline = create_pipeline(
        pipeline_name="e2e-test",
        pipeline_root=os.path.join(root, "pipeline_root"),
        data_root=dataset,
        schema_path=FACE_SCHEMA_PATH,
        settings=PipelineSettings(
            backbones=BACKBONES,
            ingest_config=IngestConfig(
                frames_per_video=6, image_size=64, clip_length=2, split_buckets={"train": 1, "eval": 1}
            ),
            training_settings={
                "*": {"input_size": 64, "epochs": 1, "tuning_epochs": 1, "batch_size": 8, "locator_epochs": 1}
            },
            tuner_trials=1,
            ensemble_members=BACKBONES,
            blessing=BlessingConfig(min_auc=0.0, max_auc_drop=1.0),
            evaluation_split="eval",
        ),
        serving_model_dir=os.path.join(root, "serving_models"),
        beam_pipeline_args=["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))


@pytest.mark.e2e
def test_pipeline_runs_end_to_end_and_caches(e2e_dataset, tmp_path):
    store = _run(e2e_dataset, str(tmp_path))
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    produced = {type_names[a.type_id] for a in store.get_artifacts()}
    assert {
        "Examples",
        IngestReport.TYPE_NAME,
        "Schema",
        "ExampleStatistics",
        "ExampleAnomalies",
        DataValidationResult.TYPE_NAME,
    } <= produced

    executions = store.get_executions()
    assert len(executions) == len(COMPONENTS)
    assert all(e.last_known_state == e.COMPLETE for e in executions)

    [ingest_report] = [a for a in store.get_artifacts() if type_names[a.type_id] == IngestReport.TYPE_NAME]
    rows = [json.loads(line) for line in open(os.path.join(ingest_report.uri, contract.REPORT_FILE_NAME))]
    assert len(rows) == 8 and all(row["status"] == "ok" and row["faces"] > 0 for row in rows)

    models = [a for a in store.get_artifacts() if type_names[a.type_id] == "Model"]
    assert len(models) == len(BACKBONES) + 1
    for model in models:
        loaded = tf.saved_model.load(os.path.join(model.uri, "Format-Serving"))
        face = tf.io.encode_png(tf.zeros((64, 64, 3), tf.uint8))
        outputs = loaded.signatures["serving_default"](images=tf.stack([face]))
        assert 0.0 <= float(outputs["fake_probability"][0]) <= 1.0
        fake_threshold, real_threshold, slope, _ = outputs["operating_point"][0].numpy()
        assert 0.0 <= real_threshold <= fake_threshold <= 1.0 and slope > 0, "the point fitted on the eval split"
        located = export.load_locator(model.uri)
        assert located is not None, "every self-blended face model, the ensemble too, has a locator"
        explained = loaded.signatures[contract.EXPLAIN_SIGNATURE](images=tf.stack([face]))
        pixels = data.decode_images(tf.stack([face]))
        expected = explain.located_gradient(export.load_keras(model.uri), located)(pixels)[1].numpy()
        assert abs(explained[contract.HEATMAP_KEY].numpy() - expected).max() < 1e-5, "explain serves its maps"
        metrics = json.load(open(os.path.join(model.uri, "eval_metrics.json")))
        assert 0.0 <= metrics["auc"] <= 1.0
    first_models = {json.load(open(os.path.join(m.uri, "eval_metrics.json")))["backbone"]: m.uri for m in models}
    assert sorted(first_models) == sorted(BACKBONES + ("ensemble",))

    root = str(tmp_path / "pipeline_root")
    evaluations = report.latest_output_dirs(root, "evaluation", "Evaluator.")
    assert set(evaluations) == {f"Evaluator.{name}" for name in MODELS}
    for component, uri in evaluations.items():
        metrics = report.overall_metrics(uri)
        assert metrics["example_count"] > 0 and metrics["video_count"] >= 2, (component, metrics)
        assert 0.0 <= metrics["auc"] <= 1.0 and 0.0 <= metrics["video_auc"] <= 1.0
    for name in MODELS:
        [version] = os.listdir(tmp_path / "serving_models" / name)
        pushed = tf.saved_model.load(str(tmp_path / "serving_models" / name / version))
        assert "serving_default" in pushed.signatures
    for name in MODELS:
        [version] = os.listdir(tmp_path / "serving_models" / name)
        card = model_card.read_card(str(tmp_path / "serving_models" / name / version))
        assert card["model_name"] == name and card["version"] == int(version) and card["blessed"]
        assert card["operating_point"]["real_videos"] >= 1 and card["test_rates"]["reals_accused"]["of"] >= 1
        assert set(card["training_data"]["splits"]) >= {"train", "eval"} and card["known_limits"]
        assert "video_auc" in card["evaluation"]
        page = model_card.read_card_html(str(tmp_path / "serving_models" / name / version))
        assert f"Model card: {name}" in page and "Operating point" in page
    assert len(report.operating_point_lines(root)) >= len(MODELS)
    lines = report.evaluation_lines(root, str(tmp_path / "serving_models"))
    assert sum("blessed; pushed to" in line for line in lines) == len(MODELS), lines
    assert sum("unseen video AUC" in line for line in lines) == len(MODELS), "self-blended training: all unseen"

    store = _run(e2e_dataset, str(tmp_path))
    second_run = store.get_executions()[len(COMPONENTS) :]
    assert len(second_run) == len(COMPONENTS)
    execution_types = {t.id: t.name.split(".")[-1] for t in store.get_execution_types()}
    states = {}
    for execution in second_run:
        states.setdefault(execution_types[execution.type_id], set()).add(execution.last_known_state)
    # execution types are named after the classes
    rerun = {
        "Resolver",
        "TrainerWithRunSettings",
        "EnsembleTrainer",
        "EvaluatorWithRunSettings",
        "Pusher",
        "ModelCard",
    }
    assert all(state == {second_run[0].CACHED} for kind, state in states.items() if kind not in rerun), states
    # A blessed model of each backbone now exists: each Trainer starts from it (a new input, so it trains again,
    # for its warm-start epochs), the ensemble is fitted on the new members, and every Evaluator judges its
    # candidate against that baseline, overall and per span; Pushers and model cards follow.
    assert all(states[kind] == {second_run[0].COMPLETE} for kind in rerun), states
    for name in BACKBONES:
        trained = export.read_eval_metrics(
            report.latest_output_dirs(root, "model", f"Trainer.{name}")[f"Trainer.{name}"]
        )
        assert trained["start"] == {"base_model": first_models[name], "reason": "", "warm": True}, trained["start"]
    for component, uri in report.latest_output_dirs(root, "evaluation", "Evaluator.").items():
        assert report.forgetting_guard(uri)["spans"], f"{component}: the guard sees the examples' spans"
