"""What the TFX Trainer and Tuner call: `run_fn` and `tuner_fn`, for any backbone.

The backbone and its settings come in `custom_config` (see `TrainingConfig`);
the tunable hyperparameters come from the Tuner's best trial when one ran,
else from the defaults.
"""

import dataclasses
import logging
import os
from typing import Any, Dict, Mapping, Optional

import keras
import keras_tuner
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from pipeline import config
from pipeline.models import data, export
from pipeline.models.base import DEFAULT_HPARAMS, FINE_TUNE_LAYERS, LEARNING_RATE, ModelSettings, set_trainable_tail
from pipeline.models.registry import get_backbone


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Per-backbone training settings; the design's defaults, all overridable."""

    backbone: str
    weights: Optional[str] = None
    input_size: Optional[int] = None
    batch_size: int = 16
    epochs: int = 10
    tuning_epochs: int = 3
    steps_per_epoch: Optional[int] = None
    fine_tune_epochs: int = 5
    early_stopping_patience: int = 5
    l2: float = 1e-3
    clip_length: int = 8
    lstm_units: int = 256
    fusion_backbones: tuple = ("xception", "densenet121")
    hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    seed: int = 0
    cache_examples: bool = True
    fake_source: str = config.DEFAULT_FAKE_SOURCE
    held_out_manipulations: tuple = ()

    def __post_init__(self) -> None:
        get_backbone(self.backbone)
        unknown = set(self.hparams) - set(DEFAULT_HPARAMS)
        if unknown:
            raise ValueError(f"Unknown hyperparameter(s) {sorted(unknown)}; expected among {sorted(DEFAULT_HPARAMS)}")
        data.FakeSource(self.fake_source, self.held_out_manipulations)
        for name in ("batch_size", "epochs", "tuning_epochs", "early_stopping_patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid training setting {name}={getattr(self, name)!r}: expected >= 1")

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> "TrainingConfig":
        values = dict(custom_config or {})
        for name in ("fusion_backbones", "held_out_manipulations"):
            if name in values:
                values[name] = tuple(values[name])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown training setting(s) {unknown}; known settings are {sorted(known)}")
        return cls(**values)

    def model_settings(self) -> ModelSettings:
        backbone = get_backbone(self.backbone)
        return ModelSettings(
            input_size=self.input_size or backbone.input_size,
            weights=self.weights,
            l2=self.l2,
            clip_length=self.clip_length,
            lstm_units=self.lstm_units,
            fusion_backbones=self.fusion_backbones,
        )

    @property
    def temporal(self) -> bool:
        return get_backbone(self.backbone).temporal

    def fakes(self) -> data.FakeSource:
        return data.FakeSource(self.fake_source, tuple(self.held_out_manipulations), self.seed)


def configure_accelerators() -> tf.distribute.Strategy:
    """Mixed precision when a GPU is present; MirroredStrategy across several GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def build_and_compile(training: TrainingConfig, hparams: Mapping[str, Any]) -> keras.Model:
    """Builds the backbone; with pretrained weights its base starts frozen (phase one)."""
    backbone = get_backbone(training.backbone)
    model = backbone.build(training.model_settings(), hparams)
    if backbone.base_layer and training.weights:
        set_trainable_tail(model.get_layer(backbone.base_layer), 0)
    compile_model(model, float(hparams.get(LEARNING_RATE, backbone.learning_rate)))
    return model


def compile_model(model: keras.Model, learning_rate: float) -> None:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
        jit_compile=bool(tf.config.list_physical_devices("GPU")),
    )


def _hparams(fn_args: FnArgs, training: TrainingConfig) -> Dict[str, Any]:
    values = get_backbone(training.backbone).default_hparams()
    values.update(training.hparams)
    if fn_args.hyperparameters:
        tuned = keras_tuner.HyperParameters.from_config(fn_args.hyperparameters)
        values.update({k: v for k, v in tuned.values.items() if k in DEFAULT_HPARAMS})
    return values


def _datasets(fn_args: FnArgs, training: TrainingConfig):
    """Training and validation batches with the same fakes: self-blends are validated on self-blends.

    Validation drives early stopping and the checkpoint, so with self-blended
    training it sees no dataset fake either: every manipulation in the test
    split stays unseen.
    """
    clip_length = training.clip_length if training.temporal else None
    cache, fakes, seed = training.cache_examples, training.fakes(), training.seed
    size = training.model_settings().input_size
    batch = training.batch_size
    train = data.dataset(fn_args.train_files, batch, True, clip_length, seed, cache, fakes, size)
    evaluation = data.dataset(fn_args.eval_files, batch, False, clip_length, seed, cache, fakes, size)
    return train, evaluation


def _steps_per_epoch(fn_args: FnArgs, training: TrainingConfig, examples: int) -> int:
    if training.steps_per_epoch:
        return training.steps_per_epoch
    if fn_args.train_steps:
        return max(1, fn_args.train_steps // training.epochs)
    return max(1, -(-examples // training.batch_size))


def _require_eval_examples(fn_args: FnArgs) -> None:
    """Early stopping and checkpointing watch the eval split: refuse to train without one."""
    if sum(data.label_counts(fn_args.eval_files)) == 0:
        raise ValueError(
            f"The eval split {fn_args.eval_files} has no examples: ingest more videos or change split_buckets"
        )


def _callbacks(checkpoint_path: str, patience: int) -> list:
    return [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2)),
        keras.callbacks.ModelCheckpoint(
            checkpoint_path, monitor="val_auc", mode="max", save_best_only=True, save_weights_only=True
        ),
    ]


# TFX Trainer will call this function.
def run_fn(fn_args: FnArgs) -> None:
    """Trains one backbone (two phases when pretrained) and exports the SavedModel."""
    training = TrainingConfig.from_custom_config(fn_args.custom_config)
    hparams = _hparams(fn_args, training)
    keras.utils.set_random_seed(training.seed)
    strategy = configure_accelerators()
    train, evaluation = _datasets(fn_args, training)
    real, fake = data.label_counts(fn_args.train_files, training.fakes())
    _require_eval_examples(fn_args)
    logging.info("Training %s on %d real and %d fake examples with %s", training.backbone, real, fake, hparams)
    os.makedirs(fn_args.model_run_dir, exist_ok=True)
    checkpoint = os.path.join(fn_args.model_run_dir, "best.weights.h5")
    with strategy.scope():
        model = build_and_compile(training, hparams)
    fit = dict(
        x=train,
        validation_data=evaluation,
        steps_per_epoch=_steps_per_epoch(fn_args, training, real + fake),
        class_weight=None if training.temporal else data.class_weights(real, fake),
        callbacks=_callbacks(checkpoint, training.early_stopping_patience),
        verbose=2,
    )
    model.fit(epochs=training.epochs, **fit)
    backbone = get_backbone(training.backbone)
    fine_tune_layers = int(hparams[FINE_TUNE_LAYERS])
    if backbone.base_layer and training.weights and fine_tune_layers != 0 and training.fine_tune_epochs:
        logging.info("Fine-tuning the last %d layers of %s", fine_tune_layers, backbone.base_layer)
        set_trainable_tail(model.get_layer(backbone.base_layer), fine_tune_layers)
        compile_model(model, float(hparams[LEARNING_RATE]) * 0.1)
        model.fit(epochs=training.fine_tune_epochs, **fit)
    model.load_weights(checkpoint)
    model_uri = os.path.dirname(fn_args.serving_model_dir)
    export.export_saved_model(model, fn_args.serving_model_dir, training.clip_length if training.temporal else 0)
    export.save_keras(model, model_uri)
    metrics = model.evaluate(evaluation, return_dict=True, verbose=0)
    export.write_eval_metrics(model_uri, {"backbone": training.backbone, "hparams": hparams, **metrics})


def search_space(hp: keras_tuner.HyperParameters, learning_rate: float) -> Dict[str, Any]:
    """Learning rate (a tenth to five times the backbone's default), dropout, head width, fine-tune depth."""
    return {
        LEARNING_RATE: hp.Float(
            LEARNING_RATE, learning_rate / 10, learning_rate * 5, sampling="log", default=learning_rate
        ),
        "dropout": hp.Choice("dropout", [0.3, 0.5], default=DEFAULT_HPARAMS["dropout"]),
        "head_units": hp.Choice("head_units", [256, 512], default=DEFAULT_HPARAMS["head_units"]),
        FINE_TUNE_LAYERS: hp.Choice(FINE_TUNE_LAYERS, [0, 20, 50], default=DEFAULT_HPARAMS[FINE_TUNE_LAYERS]),
    }


# TFX Tuner will call this function.
def tuner_fn(fn_args: FnArgs) -> TunerFnResult:
    """A KerasTuner random search over `search_space`; `max_trials` comes from custom_config."""
    custom_config = dict(fn_args.custom_config or {})
    max_trials = int(custom_config.pop("max_trials", 4))
    training = TrainingConfig.from_custom_config(custom_config)
    keras.utils.set_random_seed(training.seed)
    backbone = get_backbone(training.backbone)
    train, evaluation = _datasets(fn_args, training)
    real, fake = data.label_counts(fn_args.train_files, training.fakes())
    _require_eval_examples(fn_args)

    def build(hp: keras_tuner.HyperParameters) -> keras.Model:
        return build_and_compile(training, {**training.hparams, **search_space(hp, backbone.learning_rate)})

    tuner = keras_tuner.RandomSearch(
        build,
        objective=keras_tuner.Objective("val_auc", "max"),
        max_trials=max_trials,
        seed=training.seed,
        directory=fn_args.working_dir,
        project_name=f"tune_{training.backbone}",
    )
    fit_kwargs = dict(
        x=train,
        validation_data=evaluation,
        epochs=training.tuning_epochs,
        steps_per_epoch=_steps_per_epoch(fn_args, training, real + fake),
        class_weight=None if training.temporal else data.class_weights(real, fake),
        verbose=2,
    )
    return TunerFnResult(tuner=tuner, fit_kwargs=fit_kwargs)
