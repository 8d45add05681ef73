"""The factory's graph: one Tuner and Trainer per backbone, all behind the data gate."""

import pytest
from tfx.dsl.compiler import compiler

from pipeline.pipeline import create_pipeline


def _pipeline(**kwargs):
    return create_pipeline(
        pipeline_name="p", pipeline_root="/tmp/root", data_root="/tmp/data", schema_path="/tmp/schema.pbtxt", **kwargs
    )


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
    trainer_examples = nodes["Trainer.resnext_lstm"].inputs["examples"]
    assert trainer_examples.output_key == "clip_examples"
    assert nodes["Trainer.meso4"].inputs["examples"].output_key == "examples"
    assert '"epochs": 3' in nodes["Trainer.meso4"].exec_properties["custom_config"]
    assert '"epochs": 2' in nodes["Trainer.resnext_lstm"].exec_properties["custom_config"]


def test_without_trials_there_is_no_tuner():
    pipeline = _pipeline(backbones=["meso4"])
    assert [n.id for n in pipeline.components if n.id.startswith("Tuner")] == []


def test_settings_for_an_untrained_backbone_are_refused():
    with pytest.raises(ValueError, match="not trained"):
        _pipeline(backbones=["meso4"], training_settings={"xception": {}})


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
    assert nodes["Evaluator.resnext_lstm"].inputs["examples"].output_key == "clip_examples"


def test_without_a_serving_directory_nothing_is_pushed():
    pipeline = _pipeline(backbones=["meso4"])
    ids = [n.id for n in pipeline.components]
    assert "Evaluator.meso4" in ids and not [i for i in ids if i.startswith("Pusher")]


def test_unknown_evaluation_split_is_refused():
    with pytest.raises(ValueError, match="evaluation_split"):
        _pipeline(backbones=["meso4"], evaluation_split="validation")
