"""The user module of TFX's Trainer and Tuner: `run_fn` and `tuner_fn`, for any backbone.

The backbone and its settings come in `custom_config` (see
`deepfake_detection.models.training.TrainingConfig`); the tunable
hyperparameters come from the Tuner's best trial when one ran, else from the
defaults.
"""

import logging
import os
from typing import Any, Dict, List, Tuple

import keras
import keras_tuner
from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.components.tuner.component import TunerFnResult

from deepfake_detection import contract
from deepfake_detection.models import data, edge, export, video_scoring, warm_start
from deepfake_detection.models.base import DEFAULT_HPARAMS, FINE_TUNE_LAYERS, LEARNING_RATE, set_trainable_tail
from deepfake_detection.models.registry import get_backbone
from deepfake_detection.models.training import (
    TrainingConfig,
    build_and_compile,
    callbacks,
    compile_model,
    configure_accelerators,
    search_space,
    serving_model,
    train_locator,
)
from deepfake_detection.models.warm_start import StartingPoint


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


def _epochs(training: TrainingConfig, start: StartingPoint, fine_tunes: bool) -> Tuple[int, int]:
    """(epochs with a frozen pretrained base or the whole model, epochs of fine-tuning its last layers).

    A warm start continues where the blessed model stopped: `warm_start_epochs`
    of its last phase (fine-tuning, for a pretrained base), no more.
    """
    if not start.warm:
        return training.epochs, training.fine_tune_epochs if fine_tunes else 0
    return (0, training.warm_start_epochs) if fine_tunes else (training.warm_start_epochs, 0)


TEMPORAL_NOT_EDGE = "a temporal model scores clips of a track; the edge runtimes and `live` run face models"


def _check_splits(fn_args: FnArgs) -> Dict[str, List[str]]:
    """Where the edge exports are checked: the test split, beside the train and eval splits in each Examples
    artifact (span) the Trainer reads (it is handed only those two), else the eval split."""
    examples_uris = dict.fromkeys(os.path.dirname(os.path.dirname(pattern)) for pattern in fn_args.train_files)
    test = [os.path.join(uri, f"Split-{contract.TEST_SPLIT}", "*") for uri in examples_uris]
    return dict(zip(edge.CHECK_SPLITS, (test, list(fn_args.eval_files)), strict=True))


# TFX Trainer will call this function.
def run_fn(fn_args: FnArgs) -> None:
    """Trains one backbone (two phases when pretrained), from the blessed `fn_args.base_model`'s weights when
    the architecture matches (warm start), and exports the SavedModel."""
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
        start = warm_start.start_from(model, fn_args.base_model, training.warm_start)
        if start.warm:
            compile_model(model, float(hparams[LEARNING_RATE]) * warm_start.LEARNING_RATE_FACTOR)
    fit = dict(
        x=train,
        validation_data=evaluation,
        steps_per_epoch=_steps_per_epoch(fn_args, training, real + fake),
        class_weight=None if training.temporal else data.class_weights(real, fake),
        callbacks=callbacks(checkpoint, training.early_stopping_patience, training.ema_momentum),
        verbose=2,
    )
    backbone = get_backbone(training.backbone)
    fine_tune_layers = int(hparams[FINE_TUNE_LAYERS])
    fine_tunes = bool(backbone.base_layer and training.weights and fine_tune_layers != 0 and training.fine_tune_epochs)
    epochs, fine_tune_epochs = _epochs(training, start, fine_tunes)
    trained = len(model.fit(epochs=epochs, **fit).epoch) if epochs else 0
    if fine_tune_epochs:
        logging.info("Fine-tuning the last %d layers of %s", fine_tune_layers, backbone.base_layer)
        set_trainable_tail(model.get_layer(backbone.base_layer), fine_tune_layers)
        compile_model(model, float(hparams[LEARNING_RATE]) * 0.1)
        trained += len(model.fit(epochs=fine_tune_epochs, **fit).epoch)
    model.load_weights(checkpoint)
    model = serving_model(model, training, hparams)
    compile_model(model, float(hparams[LEARNING_RATE]))
    model_uri = os.path.dirname(fn_args.serving_model_dir)
    clip_length = training.clip_length if training.temporal else 0
    fitted = video_scoring.fit_for_model(
        model, fn_args.eval_files, clip_length, training.video_rule, training.false_alarm_budget, training.miss_budget
    )
    located, starts = None, {warm_start.START_KEY: start.to_dict()}
    if training.trains_locator:
        logging.info("Training the locator of %s on part- and whole-face pseudo-fakes", training.backbone)
        located, locator_start = train_locator(fn_args.train_files, fn_args.eval_files, training, fn_args.base_model)
        starts[warm_start.LOCATOR_START_KEY] = locator_start.to_dict()
    export.export_saved_model(model, fn_args.serving_model_dir, clip_length, fitted, located)
    export.save_keras(model, model_uri, located)
    if clip_length:
        edge.write_not_made(fn_args.serving_model_dir, TEMPORAL_NOT_EDGE)
    else:
        edge.write_checked_exports(model, fn_args.serving_model_dir, fn_args.train_files, _check_splits(fn_args))
    metrics = model.evaluate(evaluation, return_dict=True, verbose=0)
    eval_real, eval_fake = data.label_counts(fn_args.eval_files, training.fakes())
    counts = {contract.EVAL_REAL_EXAMPLES: eval_real, contract.EVAL_FAKE_EXAMPLES: eval_fake}
    starts[warm_start.EPOCHS_TRAINED_KEY] = trained
    export.write_eval_metrics(
        model_uri, {"backbone": training.backbone, "hparams": hparams, **metrics, **counts, **starts}
    )


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
