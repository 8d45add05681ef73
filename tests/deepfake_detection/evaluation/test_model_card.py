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
