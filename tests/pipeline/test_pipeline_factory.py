"""The factory's graph: one Tuner and Trainer per backbone, all behind the data gate."""

import pytest

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
    producers = {channel.producer_component_id for channel in ensemble.inputs["models"].channels}
    assert producers == {"Trainer.meso4", "Trainer.compact_cnn"}


@pytest.mark.parametrize("members", [["meso4"], ["meso4", "xception"], ["meso4", "resnext_lstm"]])
def test_ensemble_members_must_be_trained_image_backbones(members):
    with pytest.raises(ValueError, match="ensemble_members"):
        _pipeline(backbones=["meso4", "resnext_lstm"], ensemble_members=members)
