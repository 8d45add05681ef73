"""The Trainer's user module: tuned hyperparameters over the backbone's defaults and the configured ones."""

import keras_tuner
from tfx.components.trainer.fn_args_utils import FnArgs

from components.trainer_module import _hparams
from deepfake_detection.models.training import TrainingConfig, search_space


def test_tuned_hyperparameters_override_defaults_and_settings():
    hp = keras_tuner.HyperParameters()
    search_space(hp, 1e-3)
    hp.values["learning_rate"] = 3e-4
    training = TrainingConfig(backbone="meso4", hparams={"dropout": 0.3, "head_units": 256})
    tuned = _hparams(FnArgs(hyperparameters=hp.get_config()), training)
    assert tuned["learning_rate"] == 3e-4
    assert tuned["dropout"] == 0.5  # the tuner's value wins over the configured one
    untuned = _hparams(FnArgs(hyperparameters=None), training)
    assert untuned == {"learning_rate": 1e-3, "dropout": 0.3, "head_units": 256, "fine_tune_layers": 0}
