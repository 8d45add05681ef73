"""The factory's graph: one Tuner and Trainer per backbone, all behind the data gate."""

import json

import pytest
import tensorflow_model_analysis as tfma
from tfx.dsl.compiler import compiler
from tfx.utils import proto_utils

from deepfake_detection.evaluation.eval_config import BlessingConfig
from deepfake_detection.models.training import TrainingConfig
from pipeline.pipeline import PipelineSettings, create_pipeline


def _pipeline(serving_model_dir=None, **settings):
    return create_pipeline(
        pipeline_name="p",
        pipeline_root="/tmp/root",
        data_root="/tmp/data",
        schema_path="/tmp/schema.pbtxt",
        settings=PipelineSettings(**settings),
        serving_model_dir=serving_model_dir,
    )


def _read_outputs(pipeline, node_id, key="examples"):
    """{(producer, output key)} that input `key` of a node reads, through any resolver function (the window of
    spans), as the compiled pipeline says."""
    node = next(
        n.pipeline_node for n in compiler.Compiler().compile(pipeline).nodes if n.pipeline_node.node_info.id == node_id
    )
    found = set()
    for spec in node.inputs.inputs.values():
        for channel in spec.channels:
            if channel.artifact_query.type.name == "Examples":
                producer = next(
                    q.name.field_value.string_value for q in channel.context_queries if q.type.name == "node"
                )
                found.add((producer.split(".", 1)[1], channel.output_key))
    return found


def test_each_backbone_gets_its_own_branch_behind_the_gate():
    pipeline = _pipeline(
        backbones=["meso4", "resnext_lstm"],
        training_settings={"*": {"epochs": 2}, "meso4": {"epochs": 3}},
        tuner_trials=2,
    )
    nodes = {node.id: node for node in pipeline.components}
    assert {"Tuner.meso4", "Trainer.meso4", "Tuner.resnext_lstm", "Trainer.resnext_lstm"} <= set(nodes)
    for node_id in ("Tuner.meso4", "Trainer.meso4", "Trainer.resnext_lstm"):
        assert "AnomalyGate" in {upstream.id for upstream in nodes[node_id].upstream_nodes}
    assert _read_outputs(pipeline, "Trainer.resnext_lstm") == {("VideoExampleGen", "clip_examples")}
    assert _read_outputs(pipeline, "Trainer.meso4") == {("VideoExampleGen", "examples")}
    assert '"epochs": 3' in nodes["Trainer.meso4"].exec_properties["custom_config"]
    assert '"epochs": 2' in nodes["Trainer.resnext_lstm"].exec_properties["custom_config"]


def test_without_trials_there_is_no_tuner():
    pipeline = _pipeline(backbones=["meso4"])
    assert [n.id for n in pipeline.components if n.id.startswith("Tuner")] == []


def test_settings_for_an_untrained_backbone_are_refused():
    with pytest.raises(ValueError, match="not trained"):
        _pipeline(backbones=["meso4"], training_settings={"xception": {}})


def test_an_input_below_the_backbones_smallest_fails_the_build_naming_both():
    with pytest.raises(ValueError, match="input_size=64 for fusion: expected at least 71"):
        _pipeline(backbones=["meso4", "fusion"], training_settings={"*": {"input_size": 64}})


def test_clips_of_another_length_than_the_ingest_writes_fail_the_build():
    from deepfake_detection.ingest.ingest_config import IngestConfig

    with pytest.raises(ValueError, match="clip_length=4, but the ingest writes clip_length=8"):
        _pipeline(backbones=["resnext_lstm"], training_settings={"resnext_lstm": {"clip_length": 4}})
    _pipeline(
        backbones=["resnext_lstm"],
        training_settings={"resnext_lstm": {"clip_length": 4}},
        ingest_config=IngestConfig(clip_length=4),
    )


def test_ensemble_takes_every_member_model():
    pipeline = _pipeline(backbones=["meso4", "compact_cnn"], ensemble_members=["meso4", "compact_cnn"])
    [ensemble] = [n for n in pipeline.components if n.id == "EnsembleTrainer"]
    producers = {channel.producer_component_id for key, channel in ensemble.inputs.items() if key.startswith("member_")}
    assert producers == {"Trainer.meso4", "Trainer.compact_cnn"}


@pytest.mark.parametrize("members", [["meso4"], ["meso4", "xception"], ["meso4", "resnext_lstm"]])
def test_ensemble_members_must_be_trained_image_backbones(members):
    with pytest.raises(ValueError, match="ensemble_members"):
        _pipeline(backbones=["meso4", "resnext_lstm"], ensemble_members=members)


def test_every_model_is_evaluated_against_its_own_baseline_and_pushed_under_its_name():
    pipeline = _pipeline(
        backbones=["meso4", "compact_cnn", "resnext_lstm"],
        ensemble_members=["meso4", "compact_cnn"],
        serving_model_dir="/serving",
    )
    nodes = {node.id: node for node in pipeline.components}
    baselines = {
        node.pipeline_node.node_info.id: {
            key for key, spec in node.pipeline_node.inputs.inputs.items() if spec.channels
        }
        for node in compiler.Compiler().compile(pipeline).nodes
        if node.pipeline_node.node_info.id.startswith("LatestBlessedModel.")
    }
    for name, trainer in (
        ("meso4", "Trainer.meso4"),
        ("resnext_lstm", "Trainer.resnext_lstm"),
        ("ensemble", "EnsembleTrainer"),
    ):
        resolver, evaluator, pusher = (
            nodes[f"LatestBlessedModel.{name}"],
            nodes[f"Evaluator.{name}"],
            nodes[f"Pusher.{name}"],
        )
        assert baselines[resolver.id] == {f"_{trainer}.model", f"_Evaluator.{name}.blessing"}
        assert evaluator.inputs["model"].producer_component_id == trainer
        assert resolver.id in {upstream.id for upstream in evaluator.upstream_nodes}
        assert pusher.inputs["model_blessing"].producer_component_id == evaluator.id
        assert f"/serving/{name}" in str(pusher.exec_properties["push_destination"])
        assert '"test"' in evaluator.exec_properties["example_splits"]
    assert _read_outputs(pipeline, "Evaluator.resnext_lstm") == {("VideoExampleGen", "clip_examples")}


def test_each_trainer_starts_from_the_model_its_evaluator_compares_against():
    """The same resolver feeds the Trainer's `base_model` and the Evaluator's `baseline_model`: warm start and
    the forgetting guard both refer to the latest blessed model of that backbone. The ensemble is fitted, not
    trained, so it takes none."""
    pipeline = _pipeline(backbones=["meso4", "resnext_lstm"], ensemble_members=[], warm_start=0)
    nodes = {node.id: node for node in pipeline.components}
    for name in ("meso4", "resnext_lstm"):
        trainer, resolver = nodes[f"Trainer.{name}"], nodes[f"LatestBlessedModel.{name}"]
        assert trainer.inputs["base_model"].producer_component_id == resolver.id
        assert nodes[f"Evaluator.{name}"].inputs["baseline_model"].producer_component_id == resolver.id
        assert trainer.exec_properties["warm_start"] == 0
    ensemble = _pipeline(backbones=["meso4", "compact_cnn"], ensemble_members=["meso4", "compact_cnn"])
    assert "base_model" not in {node.id: node for node in ensemble.components}["EnsembleTrainer"].inputs


def test_without_a_serving_directory_nothing_is_pushed():
    pipeline = _pipeline(backbones=["meso4"])
    ids = [n.id for n in pipeline.components]
    assert "Evaluator.meso4" in ids and not [i for i in ids if i.startswith("Pusher")]


def test_unknown_evaluation_split_is_refused():
    with pytest.raises(ValueError, match="evaluation_split"):
        _pipeline(backbones=["meso4"], evaluation_split="validation")


def _unseen(evaluator):
    [metric] = [
        m
        for spec in proto_utils.json_to_proto(evaluator.exec_properties["eval_config"], tfma.EvalConfig()).metrics_specs
        for m in spec.metrics
        if m.class_name == "CrossGeneratorVideoMetric"
    ]
    return json.loads(metric.config)["unseen_manipulations"], list(metric.per_slice_thresholds)


def test_each_model_is_judged_on_the_manipulation_kinds_it_never_trained_on():
    pipeline = _pipeline(
        backbones=["meso4", "compact_cnn", "resnext_lstm"],
        ensemble_members=["meso4", "compact_cnn"],
        training_settings={
            "*": {"fake_source": "dataset", "held_out_manipulations": ["face_swap", "poisson_swap"]},
            "compact_cnn": {"fake_source": "both", "held_out_manipulations": ["poisson_swap", "self_warp"]},
            "resnext_lstm": {"fake_source": "self_blended"},
        },
        blessing=BlessingConfig(min_unseen_video_auc=0.6),
    )
    nodes = {node.id: node for node in pipeline.components}
    unseen = {
        name: _unseen(nodes[f"Evaluator.{name}"]) for name in ("meso4", "compact_cnn", "resnext_lstm", "ensemble")
    }
    assert {name: kinds for name, (kinds, _) in unseen.items()} == {
        "meso4": ["face_swap", "poisson_swap"],
        "compact_cnn": ["poisson_swap", "self_warp"],
        "resnext_lstm": ["*"],
        "ensemble": ["poisson_swap"],
    }
    assert all(len(bounds) == 1 for _, bounds in unseen.values())


def test_by_default_every_kind_is_unseen_and_an_unbounded_model_may_have_seen_them_all():
    def evaluator(pipeline):
        return {node.id: node for node in pipeline.components}["Evaluator.meso4"]

    assert _unseen(evaluator(_pipeline(backbones=["meso4"])))[0] == ["*"]
    seen_all = _pipeline(backbones=["meso4"], training_settings={"*": {"fake_source": "dataset"}})
    assert _unseen(evaluator(seen_all)) == ([], [])
    with pytest.raises(ValueError, match="min_unseen_video_auc"):
        _pipeline(
            backbones=["meso4"],
            training_settings={"*": {"fake_source": "dataset"}},
            blessing=BlessingConfig(min_unseen_video_auc=0.6),
        )
    with pytest.raises(ValueError, match="fake source 'gan'"):
        _pipeline(backbones=["meso4"], training_settings={"*": {"fake_source": "gan"}})


def test_the_code_version_reaches_the_ingest_and_trainer_properties_and_no_training_setting():
    pipeline = _pipeline(backbones=["meso4"], tuner_trials=1, code_version="abc123")
    nodes = {node.id: node for node in pipeline.components}
    assert nodes["VideoExampleGen"].exec_properties["code_version"] == "abc123"
    for node_id in ("Tuner.meso4", "Trainer.meso4"):
        custom_config = json.loads(nodes[node_id].exec_properties["custom_config"])
        assert custom_config["code_version"] == "abc123"
        assert TrainingConfig.from_custom_config(custom_config).backbone == "meso4"
    unversioned = {node.id: node for node in _pipeline(backbones=["meso4"]).components}
    assert "code_version" not in json.loads(unversioned["Trainer.meso4"].exec_properties["custom_config"])


def test_training_and_evaluation_read_the_newest_spans_through_tfxs_rolling_range():
    pipeline = _pipeline(backbones=["meso4"], train_spans=3)
    nodes = {node.id: node for node in pipeline.components}
    window = nodes["Trainer.meso4"].inputs["examples"]
    assert "LatestSpan" in repr(window) and "n=3" in repr(window)
    assert _read_outputs(pipeline, "Trainer.meso4") == {("VideoExampleGen", "examples")}
    assert _read_outputs(pipeline, "Evaluator.meso4") == {("VideoExampleGen", "examples")}


def test_without_a_window_training_reads_the_span_this_run_ingested():
    nodes = {node.id: node for node in _pipeline(backbones=["meso4"], train_spans=None).components}
    examples = nodes["Trainer.meso4"].inputs["examples"]
    assert (examples.producer_component_id, examples.output_key) == ("VideoExampleGen", "examples")


def test_drift_compares_the_newest_span_with_the_previous_one_before_the_gate():
    from pipeline.runners import flags

    pipeline = _pipeline(backbones=["meso4"], drift_config=flags.drift_config())
    nodes = {node.id: node for node in pipeline.components}
    validator, baseline, gate = nodes["DistributionValidator"], nodes["BaselineStatisticsGen"], nodes["AnomalyGate"]
    assert validator.inputs["statistics"].producer_component_id == "StatisticsGen"
    assert validator.inputs["baseline_statistics"].producer_component_id == "BaselineStatisticsGen"
    assert "Slice(" in repr(baseline.inputs["examples"])
    assert _read_outputs(pipeline, "BaselineStatisticsGen") == {("VideoExampleGen", "examples")}
    assert gate.inputs["drift"].producer_component_id == "DistributionValidator"
    assert gate.exec_properties["on_drift"] == "warn"


def test_a_window_of_no_span_is_refused():
    with pytest.raises(ValueError, match="train_spans=0"):
        _pipeline(backbones=["meso4"], train_spans=0)
