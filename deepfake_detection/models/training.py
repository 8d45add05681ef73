"""Training recipe shared by the TFX Trainer and Tuner, the benches and the tests: settings, model, callbacks.

`TrainingConfig` is what `custom_config` carries; `components/trainer_module.py`
holds the `run_fn` and `tuner_fn` that TFX calls and builds on this module.
"""

import contextlib
import dataclasses
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

import keras
import keras_tuner
import tensorflow as tf

from deepfake_detection import component_ids, contract, defaults
from deepfake_detection.evaluation import operating_point, video_scores
from deepfake_detection.models import data, locator, warm_start
from deepfake_detection.models.base import (
    DEFAULT_HPARAMS,
    FINE_TUNE_LAYERS,
    LEARNING_RATE,
    ModelSettings,
    set_trainable_tail,
)
from deepfake_detection.models.registry import get_backbone

# Adam's step for the locator, which learns from scratch like blend_resnet.
LOCATOR_LEARNING_RATE = 1e-3
# Locators trained per model, each from its own seed (the model's, then LOCATOR_SEED_STEP further each), and averaged.
LOCATOR_MEMBERS = 2
LOCATOR_SEED_STEP = 1000
# The locator's weights are averaged over about its last epoch (a hundred steps): validation swung by 0.1 without.
LOCATOR_EMA_MOMENTUM = 0.99
# CPU flags of native bfloat16 arithmetic, where training under mixed_bfloat16 pays (see `training_precision`).
BFLOAT16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


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
    fake_source: str = contract.DEFAULT_FAKE_SOURCE
    held_out_manipulations: tuple = ()
    ema_momentum: float = defaults.EMA_MOMENTUM
    false_alarm_budget: float = operating_point.DEFAULT_FALSE_ALARM_BUDGET
    miss_budget: float = operating_point.DEFAULT_MISS_BUDGET
    video_rule: str = video_scores.RULE_MEAN
    locator_epochs: int = defaults.LOCATOR_EPOCHS
    locator_steps_per_epoch: Optional[int] = None
    warm_start: bool = True
    warm_start_epochs: int = defaults.WARM_START_EPOCHS

    def __post_init__(self) -> None:
        get_backbone(self.backbone)
        video_scores.check_rule(self.video_rule)
        if not 0 < self.false_alarm_budget < 1 or not 0 <= self.miss_budget < 1:
            raise ValueError(
                f"Invalid training setting false_alarm_budget={self.false_alarm_budget!r} or "
                f"miss_budget={self.miss_budget!r}: expected 0 < false_alarm_budget < 1 and 0 <= miss_budget < 1"
            )
        unknown = set(self.hparams) - set(DEFAULT_HPARAMS)
        if unknown:
            raise ValueError(f"Unknown hyperparameter(s) {sorted(unknown)}; expected among {sorted(DEFAULT_HPARAMS)}")
        data.FakeSource(self.fake_source, self.held_out_manipulations)
        backbone, size = get_backbone(self.backbone), self.model_settings().input_size
        if size < backbone.min_input_size:
            raise ValueError(
                f"Invalid training setting input_size={size} for {self.backbone}: "
                f"expected at least {backbone.min_input_size}"
            )
        if self.locator_epochs < 0:
            raise ValueError(f"Invalid training setting locator_epochs={self.locator_epochs!r}: expected >= 0 (0: off)")
        for name in ("batch_size", "epochs", "tuning_epochs", "early_stopping_patience", "warm_start_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"Invalid training setting {name}={getattr(self, name)!r}: expected >= 1")
        if not 0 <= self.ema_momentum < 1:
            raise ValueError(f"Invalid training setting ema_momentum={self.ema_momentum!r}: expected 0 (off) to < 1")

    @classmethod
    def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> "TrainingConfig":
        values = dict(custom_config or {})
        values.pop(component_ids.CODE_VERSION_KEY, None)  # identifies the code for TFX's cache; no training setting
        for name in ("fusion_backbones", "held_out_manipulations"):
            if name in values:
                if isinstance(values[name], (str, bytes)):
                    raise ValueError(f"Invalid training setting {name}={values[name]!r}: expected a list")
                values[name] = tuple(values[name])
        if "warm_start" in values:  # a Kubeflow runtime parameter arrives as an int
            values["warm_start"] = bool(values["warm_start"])
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

    @property
    def trains_locator(self) -> bool:
        """A locator needs face crops and their landmarks, which self-blended training reads: face models only."""
        return self.locator_epochs > 0 and not self.temporal and self.fakes().self_blends

    def fakes(self) -> data.FakeSource:
        return data.FakeSource(self.fake_source, tuple(self.held_out_manipulations), self.seed)


def configure_accelerators() -> tf.distribute.Strategy:
    """MirroredStrategy across several GPUs, else the default strategy."""
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def cpu_has_bfloat16_units(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Intel AMX (Sapphire Rapids and later) or AVX-512 BF16 (AMD Zen 4, Cooper Lake): oneDNN runs bfloat16
    convolutions on them natively. Elsewhere bfloat16 is emulated and slower than float32."""
    try:
        with open(cpuinfo) as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool(BFLOAT16_CPU_FLAGS & set(flags))


def training_precision() -> str:
    """The Keras dtype policy models are trained under: mixed_float16 with a GPU; mixed_bfloat16 on a CPU
    with native bfloat16 units (blend_resnet at 128 px, this project's 2-core machines: a training step 2.5x
    faster than float32 on Intel AMX, 1.5x on AMD Zen 4's AVX-512 BF16); float32 elsewhere."""
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bfloat16_units() else "float32"


@contextlib.contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Layers built inside take the `name` policy; the process's policy is restored after."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def build_and_compile(training: TrainingConfig, hparams: Mapping[str, Any]) -> keras.Model:
    """Builds the backbone under `training_precision()`; with pretrained weights its base starts frozen."""
    backbone = get_backbone(training.backbone)
    with dtype_policy(training_precision()):
        model = backbone.build(training.model_settings(), hparams)
    if backbone.base_layer and training.weights:
        set_trainable_tail(model.get_layer(backbone.base_layer), 0)
    compile_model(model, float(hparams.get(LEARNING_RATE, backbone.learning_rate)))
    return model


def serving_model(model: keras.Model, training: TrainingConfig, hparams: Mapping[str, Any]) -> keras.Model:
    """The model to export: a bfloat16-trained one rebuilt in float32 with the same weights, so any serving
    machine runs it (TF Serving's GPU image on GPUs without bfloat16, CPUs without AMX); others as trained."""
    return _in_float32(model, lambda: get_backbone(training.backbone).build(training.model_settings(), hparams))


def _in_float32(model: keras.Model, build: Callable[[], keras.Model]) -> keras.Model:
    """`model` itself unless it was built under mixed_bfloat16; then `build()`'s float32 model with its weights."""
    if model.dtype_policy.name != "mixed_bfloat16":
        return model
    with dtype_policy("float32"):
        copy = build()
    copy.set_weights(model.get_weights())
    return copy


def compile_model(model: keras.Model, learning_rate: float, metrics: Optional[list] = None) -> None:
    """Adam and binary cross-entropy (per face, or per cell of a locator's map), XLA on GPUs; `metrics`
    default to the classifier's AUC and accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=metrics or [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")],
        jit_compile=bool(tf.config.list_physical_devices("GPU")),
    )


class WeightAverage(keras.callbacks.Callback):
    """An exponential moving average of every float weight, batch-norm statistics included.

    Validation scores the average, and the callbacks after this one (early
    stopping, checkpoints) see it at each epoch's end, so the model kept and
    exported is the average, not the last step's weights. Keras's own
    (`use_ema` with `SwapEMAWeights`) averages only trainable weights: the
    averaged convolutions then meet batch-norm statistics gathered under the
    raw ones, and in the main job its val AUC peaked at 0.69 (0.81 without).
    The momentum warms up as min(momentum, (1 + t) / (10 + t)) after t steps,
    so the first epochs are not an average with the initialisation.
    """

    def __init__(self, momentum: float):
        super().__init__()
        self.momentum = momentum

    def on_train_begin(self, logs=None) -> None:  # noqa: ANN001
        self._weights = [w for w in self.model.weights if w.dtype in ("float32", "float64")]
        self._average = [tf.Variable(w.value, trainable=False) for w in self._weights]
        self._steps = tf.Variable(0.0)
        self._in_model = False

    @tf.function
    def _update(self) -> None:
        self._steps.assign_add(1.0)
        momentum = tf.minimum(self.momentum, (1.0 + self._steps) / (10.0 + self._steps))
        for average, weight in zip(self._average, self._weights, strict=True):
            average.assign(momentum * average + (1.0 - momentum) * weight.value)

    def _hold_average(self, wanted: bool) -> None:
        """Puts the average in the model (`wanted`) or the raw weights back, swapping the two copies."""
        if self._in_model == wanted:
            return
        for average, weight in zip(self._average, self._weights, strict=True):
            current = tf.identity(weight.value)
            weight.assign(average)
            average.assign(current)
        self._in_model = wanted

    def on_train_batch_end(self, batch: int, logs=None) -> None:  # noqa: ANN001
        self._update()

    def on_test_begin(self, logs=None) -> None:  # noqa: ANN001
        self._hold_average(True)

    def on_test_end(self, logs=None) -> None:  # noqa: ANN001
        self._hold_average(False)

    def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
        self._hold_average(True)

    def on_epoch_begin(self, epoch: int, logs=None) -> None:  # noqa: ANN001
        self._hold_average(False)


def callbacks(
    checkpoint_path: Optional[str], patience: int, ema_momentum: float = 0.0, monitor: str = "val_auc"
) -> list:
    """Early stopping on `monitor` (higher is better) with the best weights restored, learning-rate halving on
    plateaus of the val loss, and, given a path, a checkpoint of the best; with a non-zero `ema_momentum`, all
    of them judge and keep the moving average of the weights (`WeightAverage`)."""
    averaging = [WeightAverage(ema_momentum)] if ema_momentum else []
    recipe = averaging + [
        keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=patience, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 2)),
    ]
    if checkpoint_path:
        recipe.append(
            keras.callbacks.ModelCheckpoint(
                checkpoint_path, monitor=monitor, mode="max", save_best_only=True, save_weights_only=True
            )
        )
    return recipe


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


@keras.saving.register_keras_serializable(package="deepfake")
class PointingGame(keras.metrics.Metric):
    """The share of pasted-over faces whose map peaks in a cell that is at least half pasted.

    Faces with an empty target (real ones) are not counted: there is
    nothing to point at. The same measure as bench/explain_bench.py, on
    pseudo-fakes, so validation watches what the locator is for.
    """

    def __init__(self, name: str = "pointing", **kwargs):
        super().__init__(name=name, **kwargs)
        self.hits = self.add_variable((), initializer="zeros", name="hits")
        self.faces = self.add_variable((), initializer="zeros", name="faces")

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: Optional[tf.Tensor] = None) -> None:
        count = tf.shape(y_true)[0]
        target = tf.reshape(tf.cast(y_true, tf.float32), [count, -1])
        peak = tf.argmax(tf.reshape(tf.cast(y_pred, tf.float32), [count, -1]), axis=1)
        hit = tf.gather(target, peak, axis=1, batch_dims=1) >= 0.5
        pasted = tf.reduce_max(target, axis=1) > 0
        self.hits.assign_add(tf.reduce_sum(tf.cast(hit & pasted, tf.float32)))
        self.faces.assign_add(tf.reduce_sum(tf.cast(pasted, tf.float32)))

    def result(self) -> tf.Tensor:
        return tf.math.divide_no_nan(self.hits, self.faces)


def train_locator(
    train_files: list, eval_files: list, training: TrainingConfig, base_model_dir: Optional[str] = None
) -> Tuple[keras.Model, warm_start.StartingPoint]:
    """The locator: LOCATOR_MEMBERS locators (`locator.build_locator`), each from its own seed, and the mean of
    their maps (`locator.mean_map`). One locator's pointing game on eyes-only edits moved by 0.2 from seed to
    seed; the mean of two moves less (docs/explanations.md). With the base model's locators (`base_model_dir`,
    warm start on), each starts from its counterpart's weights and trains at most `warm_start_epochs`."""
    real, _ = data.label_counts(train_files, training.fakes())
    steps = training.locator_steps_per_epoch or max(1, -(-2 * real // training.batch_size))
    bases, start = warm_start.base_locators(base_model_dir, LOCATOR_MEMBERS, training.warm_start)
    members = []
    for number in range(LOCATOR_MEMBERS):
        seed = training.seed + LOCATOR_SEED_STEP * number
        keras.utils.set_random_seed(seed)
        with dtype_policy(training_precision()):
            model = locator.build_locator()
        if bases:
            start = warm_start.carry_weights(model, bases[number], start.base_model)
        epochs = min(training.locator_epochs, training.warm_start_epochs) if start.warm else training.locator_epochs
        members.append(_train_one_locator(model, train_files, eval_files, training, seed, steps, epochs))
    return locator.mean_map(members), start


def _train_one_locator(
    model: keras.Model,
    train_files: list,
    eval_files: list,
    training: TrainingConfig,
    seed: int,
    steps: int,
    epochs: int,
) -> keras.Model:
    """Trains one locator on the real faces of `train_files` and their part- and whole-face pseudo-fakes drawn
    from `seed`, the weights of its best validation pointing game kept; float32 for serving."""
    compile_model(model, LOCATOR_LEARNING_RATE, metrics=[PointingGame()])
    batch, grid, size = training.batch_size, locator.GRID, locator.LOCATOR_INPUT_SIZE
    model.fit(
        data.locator_dataset(train_files, batch, True, grid, seed, size),
        validation_data=data.locator_dataset(eval_files, batch, False, grid, seed, size),
        epochs=epochs,
        steps_per_epoch=steps,
        callbacks=callbacks(None, training.early_stopping_patience, LOCATOR_EMA_MOMENTUM, monitor="val_pointing"),
        verbose=2,
    )
    return _in_float32(model, locator.build_locator)
