"""The training recipe's moving average of the weights: what validation scores and the checkpoint keeps."""

import keras
import numpy as np
import pytest

from deepfake_detection import defaults
from deepfake_detection.models.training import (
    TrainingConfig,
    WeightAverage,
    callbacks,
    compile_model,
    cpu_has_bfloat16_units,
)


class _EpochEndWeights(keras.callbacks.Callback):
    """Records the weights the other callbacks see at each epoch's end, and the raw ones after its last step."""

    def __init__(self):
        super().__init__()
        self.at_epoch_end, self.after_last_step = [], []

    def on_train_batch_end(self, batch, logs=None):  # noqa: ANN001
        self._last_step = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None):  # noqa: ANN001
        self.at_epoch_end.append(self.model.get_weights())
        self.after_last_step.append(self._last_step)


def _fit(tmp_path, ema_momentum: float):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    compile_model(model, 0.05)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    checkpoint = str(tmp_path / f"best-{ema_momentum}.weights.h5")
    recipe = callbacks(checkpoint, patience=10, ema_momentum=ema_momentum)
    recorder = _EpochEndWeights()
    # The recorder sits where EarlyStopping and ModelCheckpoint sit: after the swap, if any.
    order = recipe[:1] + [recorder] + recipe[1:] if ema_momentum else [recorder] + recipe
    model.fit(x, y, validation_data=(x, y), epochs=3, batch_size=8, verbose=0, callbacks=order)
    model.load_weights(checkpoint)
    return model.get_weights(), recorder


def _same(a, b) -> bool:
    return all(np.allclose(u, v, atol=1e-7) for u, v in zip(a, b, strict=True))


def test_the_checkpoint_keeps_the_weight_average_not_the_last_step(tmp_path):
    kept, recorder = _fit(tmp_path, ema_momentum=0.9)
    assert not any(_same(end, raw) for end, raw in zip(recorder.at_epoch_end, recorder.after_last_step, strict=True)), (
        "validation and the checkpoint must see the average, not the raw weights"
    )
    assert any(_same(kept, end) for end in recorder.at_epoch_end)
    assert not any(_same(kept, raw) for raw in recorder.after_last_step)


def test_without_averaging_the_checkpoint_keeps_the_raw_weights(tmp_path):
    kept, recorder = _fit(tmp_path, ema_momentum=0.0)
    assert all(_same(end, raw) for end, raw in zip(recorder.at_epoch_end, recorder.after_last_step, strict=True))
    assert any(_same(kept, raw) for raw in recorder.after_last_step)


def test_ema_momentum_is_a_validated_training_setting():
    assert TrainingConfig(backbone="blend_resnet").ema_momentum == defaults.EMA_MOMENTUM
    assert TrainingConfig.from_custom_config({"backbone": "blend_resnet", "ema_momentum": 0}).ema_momentum == 0
    with pytest.raises(ValueError, match="ema_momentum"):
        TrainingConfig(backbone="blend_resnet", ema_momentum=1.0)


def test_batch_norm_statistics_are_averaged_with_the_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.Dense(1, "sigmoid")])
    compile_model(model, 0.05)
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(64, 4)).astype("float32")
    y = (x[:, 0] > 2).astype("float32")
    average = WeightAverage(0.9)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[average])
    moving_mean = model.layers[0].moving_mean
    # At the end of training the average is in the model; the raw statistics are in the shadow copy.
    raw = next(a for a, w in zip(average._average, average._weights, strict=True) if w is moving_mean)
    assert not np.allclose(moving_mean.numpy(), raw.numpy())
    assert np.all(np.abs(moving_mean.numpy()) < np.abs(x.mean(axis=0)) + 1e-6)  # averaged from its zero start


@pytest.mark.parametrize(
    "flags, native",
    [
        ("fpu sse2 avx512f amx_bf16 amx_tile", True),  # Intel Sapphire Rapids
        ("fpu sse2 avx512f avx512_bf16", True),  # AMD Zen 4
        ("fpu sse2 avx2 avx512f avx512_vnni", False),  # no bfloat16 arithmetic: emulated, slower than float32
    ],
)
def test_bfloat16_training_follows_the_cpus_native_bfloat16_units(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert cpu_has_bfloat16_units(str(cpuinfo)) is native


def test_an_unreadable_cpuinfo_means_float32(tmp_path):
    assert cpu_has_bfloat16_units(str(tmp_path / "absent")) is False
