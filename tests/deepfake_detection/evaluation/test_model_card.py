"""The model card's known limits follow from how the version was made."""

from deepfake_detection.evaluation import model_card


def _card(training: dict, fake_source: str) -> dict:
    return {"training": training, "training_data": {"fake_source": fake_source}, "operating_point": None}


def test_a_model_with_a_locator_says_what_its_map_is_and_is_not():
    limits = model_card.known_limits(_card({"locator_epochs": 12}, "self_blended"))
    assert any("explain map" in limit and "not proof" in limit for limit in limits)
    for card in (_card({"locator_epochs": 0}, "self_blended"), _card({}, "dataset")):
        assert not any("explain map" in limit for limit in model_card.known_limits(card))
    assert any("self-blended" in limit for limit in limits) and any("Operating point" in limit for limit in limits)


def test_the_card_says_where_training_started_and_whether_each_span_was_kept():
    from deepfake_detection.evaluation import report

    trained = {
        "start": {"base_model": "/root/Trainer.meso4/model/7", "reason": "", "warm": True},
        "locator_start": {"base_model": None, "reason": "the base model /root/Trainer.meso4/model/7 has no locator"},
        "epochs_trained": 5,
    }
    guard = {
        "max_auc_drop": 0.02,
        "held": False,
        "spans": [
            {"span": 1, "candidate_auc": 0.71, "baseline_auc": 0.8, "held": False},
            {"span": 2, "candidate_auc": 0.9, "baseline_auc": 0.85, "held": True},
        ],
    }
    card = model_card.build_card(
        model_name="meso4",
        version=3,
        training={"locator_epochs": 0},
        data={"datasets": ["dfdc"], "fake_source": "dataset", "splits": {}},
        evaluation={"split": "test", "auc": 0.8},
        fitted_point=None,
        test_rates=None,
        blessed=False,
        training_start=report.training_start(trained),
        forgetting=guard,
    )
    text = model_card.render_markdown(card)
    assert (
        "Started from: warm start from /root/Trainer.meso4/model/7; locator: fresh start: the base model "
        "/root/Trainer.meso4/model/7 has no locator (5 epochs)." in text
    )
    assert "Forgetting guard (AUC per span against the baseline, allowed drop 0.020): FAILED" in text
    assert "- span 1: 0.710 against 0.800 (drop beyond the bound)\n- span 2: 0.900 against 0.850\n" in text
    assert report.training_start({"backbone": "ensemble", "auc": 0.9}) is None, "an ensemble is fitted, not trained"
