"""The Trainer's user module: tuned hyperparameters over the backbone's defaults and the configured ones; the
locator trained after the classifier, which it leaves as it was."""

import keras_tuner
import numpy as np
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from components.trainer_module import _hparams, run_fn
from deepfake_detection import contract, edge_runtime
from deepfake_detection.models import export
from deepfake_detection.models.training import TrainingConfig, search_space
from tests.helpers import astronaut_face


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


def _write_face_examples(path: str) -> None:
    """Four videos (two real, two fake) of four faces each: the astronaut's face, shifted in brightness."""
    image, landmarks = astronaut_face(64)
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for video in range(4):
            for face in range(4):
                pixels = np.clip(image.astype(int) + 10 * face - 5 * video, 0, 255).astype(np.uint8)
                feature = {
                    contract.IMAGE_KEY: _bytes(tf.io.encode_png(pixels).numpy()),
                    contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[video % 2])),
                    contract.VIDEO_ID_KEY: _bytes(f"v{video}".encode()),
                    contract.FACE_LANDMARKS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=landmarks)),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def test_the_locator_leaves_the_classifier_exactly_as_trained_without_it(tmp_path):
    files = [str(tmp_path / "faces.gz")]
    _write_face_examples(files[0])
    crops = [tf.io.encode_png(astronaut_face(64)[0]).numpy()] * 2
    scores, signatures = [], []
    for locator_epochs in (0, 1):
        model_dir = tmp_path / f"locator_{locator_epochs}"
        settings = {"backbone": "compact_cnn", "input_size": 32, "epochs": 1, "batch_size": 8, "steps_per_epoch": 2}
        settings.update(locator_epochs=locator_epochs, locator_steps_per_epoch=2)
        run_fn(
            FnArgs(
                train_files=files,
                eval_files=files,
                serving_model_dir=str(model_dir / "Format-Serving"),
                model_run_dir=str(model_dir / "run"),
                custom_config=settings,
                hyperparameters=None,
                train_steps=None,
            )
        )
        loaded = tf.saved_model.load(str(model_dir / "Format-Serving"))
        scores.append(loaded.signatures[contract.SERVING_DEFAULT](images=tf.constant(crops))[contract.OUTPUT_KEY])
        signatures.append(loaded.signatures[contract.EXPLAIN_SIGNATURE](images=tf.constant(crops)))
        assert (export.load_locator(str(model_dir)) is not None) == bool(locator_epochs)
        edge_folder = edge_runtime.edge_folder(str(model_dir / "Format-Serving"))
        checked = edge_runtime.read_json(edge_folder, contract.EDGE_REPORT_FILE)
        assert checked["checked_on"]["split"] == contract.EVAL_SPLIT  # no test split beside these files
        assert set(checked["exports"]) == set(contract.EDGE_FILES)
    np.testing.assert_array_equal(scores[0].numpy(), scores[1].numpy())
    np.testing.assert_allclose(signatures[1][contract.OUTPUT_KEY].numpy(), scores[1].numpy(), atol=1e-6)
    gradient_map, located_map = (s[contract.HEATMAP_KEY].numpy() for s in signatures)
    assert np.allclose(gradient_map.max(axis=(1, 2)), 1.0), "without a locator: the input gradient, peak 1"
    assert not np.allclose(located_map, gradient_map), "with one: the locator's own map"


def _train(tmp_path, name: str, files: list, base_model=None, **settings) -> str:
    """run_fn on compact_cnn at 32 px without a locator; returns the Model artifact's folder."""
    model_dir = tmp_path / name
    custom_config = {"backbone": "compact_cnn", "input_size": 32, "batch_size": 8, "steps_per_epoch": 2}
    custom_config.update(locator_epochs=0, early_stopping_patience=5, **settings)
    run_fn(
        FnArgs(
            train_files=files,
            eval_files=files,
            serving_model_dir=str(model_dir / "Format-Serving"),
            model_run_dir=str(model_dir / "run"),
            custom_config=custom_config,
            hyperparameters=None,
            train_steps=None,
            base_model=base_model,
        )
    )
    return str(model_dir)


def test_a_warm_start_carries_the_blessed_models_weights_and_trains_its_fewer_epochs(tmp_path):
    files = [str(tmp_path / "faces.gz")]
    _write_face_examples(files[0])
    base = _train(tmp_path, "base", files, epochs=3, seed=1)
    base_weights = export.load_keras(base).trainable_weights
    assert export.read_eval_metrics(base)["start"]["reason"] == "no blessed model of this backbone yet"
    # Steps of 1e-9: whatever the run starts from, it ends there (to the optimiser's step).
    still = {"epochs": 3, "warm_start_epochs": 1, "hparams": {"learning_rate": 1e-9}, "seed": 2}
    runs = {
        warm: _train(tmp_path, f"warm_{warm}", files, base_model=f"{base}/Format-Serving", warm_start=warm, **still)
        for warm in (True, False)
    }
    warm, fresh = (export.read_eval_metrics(runs[key]) for key in (True, False))
    assert warm["start"] == {"base_model": base, "reason": "", "warm": True} and warm["epochs_trained"] == 1
    assert fresh["start"]["reason"] == "warm start switched off (--no-warm-start)" and fresh["epochs_trained"] == 3
    for key, carried in ((True, True), (False, False)):
        weights = export.load_keras(runs[key]).trainable_weights
        same = [np.allclose(w.numpy(), b.numpy(), atol=1e-6) for w, b in zip(weights, base_weights, strict=True)]
        assert all(same) if carried else not all(same)
