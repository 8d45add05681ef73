"""Training throughput: the pipeline's input path against decoded images held in memory.

For each backbone, trains the same number of steps three times in one run:
- decoding: `deepfake_detection.models.data.dataset` over gzipped TFRecords of PNG
  crops, read, parsed, decoded and resized in tf.data at every step (what the
  first epoch costs);
- trainer path: the same with the Trainer's setting `cache_examples` (crops
  decoded once, kept as uint8 in memory: every later epoch);
- in memory: `model.fit` on the same crops already decoded into a NumPy array;
- self-blended: the trainer path with `fake_source=self_blended`, where every
  real crop is followed by its self-blend made on the fly (numpy/OpenCV in
  tf.data worker threads).
The ratio (trainer path / in memory) near 1 means the input pipeline is not the
bottleneck; (self-blended / trainer path) near 1 means making pseudo-fakes does
not starve training. The blend's own cost (milliseconds per real face and its
pseudo-fake, on one thread, in the Trainer's groups) is printed beside it: it
is steadier than the ratio, which moves with the machine's load. This
machine's throughput swings up to 2x between minutes, so the paths are
measured in turn for `--rounds` rounds and each figure is the median of its
rounds.

    python bench/train_bench.py [--backbones blend_resnet,meso4] [--steps 30] [--batch-size 16] [--rounds 3]
"""

import os
import statistics
import tempfile
import time

import _common
import keras
import numpy as np
import tensorflow as tf

from deepfake_detection import contract
from deepfake_detection.models import data, self_blend
from deepfake_detection.models.training import TrainingConfig, build_and_compile

BENCH = _common.Bench(
    "train_bench",
    "the Trainer's input path near the in-memory rate (ratio near 1), and self-blended training at least 0.9 of it",
)
# Where MTCNN puts the five landmarks of a centred face crop (fractions of the crop).
_LANDMARKS = (0.36, 0.4, 0.64, 0.4, 0.5, 0.55, 0.39, 0.68, 0.61, 0.68)


def write_examples(path: str, count: int, size: int, seed: int = 0) -> np.ndarray:
    """Writes `count` PNG face-crop examples of real photo texture; returns their decoded pixels."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photo = skimage.data.astronaut()
    pixels = []
    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for i in range(count):
            y, x = rng.integers(0, photo.shape[0] - size, size=2)
            crop = np.ascontiguousarray(photo[y : y + size, x : x + size])
            pixels.append(crop)
            png = tf.io.encode_png(crop).numpy()
            feature = {
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 2])),
                contract.FACE_LANDMARKS_KEY: tf.train.Feature(float_list=tf.train.FloatList(value=_LANDMARKS)),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return np.stack(pixels).astype(np.float32)


class _StepClock(keras.callbacks.Callback):
    """The time from the end of the `warm_up`-th step to the end of training."""

    def __init__(self, warm_up: int):
        super().__init__()
        self.warm_up, self.started, self.ended = warm_up, 0.0, 0.0

    def on_train_batch_end(self, batch: int, logs=None) -> None:  # noqa: ANN001
        if batch == self.warm_up - 1:
            self.started = time.perf_counter()

    def on_train_end(self, logs=None) -> None:  # noqa: ANN001
        self.ended = time.perf_counter()


def images_per_second(model, steps: int, batch_size: int, warm_up: int, **fit_kwargs) -> float:
    """Steps timed inside one fit, after `warm_up` steps: no tracing, iterator start or cache filling counted."""
    clock = _StepClock(warm_up)
    model.fit(epochs=1, steps_per_epoch=warm_up + steps, verbose=0, callbacks=[clock], **fit_kwargs)
    return steps * batch_size / (clock.ended - clock.started)


def blend_ms_per_pair(resized: tf.Tensor, rounds: int, groups: int = 40) -> float:
    """Median over `rounds` of the time `self_blend.blend_batch` takes per pair, on groups of the Trainer's size."""
    group = data.BLEND_GROUP
    faces = tf.cast(tf.round(resized[:group]), tf.uint8).numpy()
    landmarks = np.tile(np.array(_LANDMARKS, np.float32), (group, 1))
    real = np.ones(group, bool)
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for index in range(groups):
            self_blend.blend_batch(faces, landmarks, real, np.array([0, index]))
        timings.append((time.perf_counter() - started) * 1e3 / (groups * group))
    return statistics.median(timings)


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--backbones", default="blend_resnet,meso4,compact_cnn")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--input-size", type=int, help="override the backbones' input size (default: their own)")
    parser.add_argument("--rounds", type=int, default=3, help="measurements of each path, in turn; medians shown")
    args = BENCH.parse_args(parser)
    devices = [d.name for d in tf.config.list_physical_devices("GPU")] or ["CPU only"]
    print(f"devices: {', '.join(devices)}; batch {args.batch_size}; {args.steps} timed steps per measurement")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "faces.gz")
        pixels = write_examples(path, args.examples, data.CROP_SIZE)
        labels = (np.arange(args.examples) % 2).astype(np.float32)
        print(
            f"{'backbone':<16} {'decoding img/s':>15} {'trainer path img/s':>19} {'in memory img/s':>16} {'ratio':>6}"
            f" {'self-blended img/s':>19} {'ratio':>6} {'blend ms/pair':>14}"
        )
        self_blended = data.FakeSource(contract.FAKE_SOURCE_SELF_BLENDED)
        figures = {}
        for name in args.backbones.split(","):
            training = TrainingConfig(
                backbone=name,
                input_size=args.input_size,
                batch_size=args.batch_size,
                fake_source=contract.FAKE_SOURCE_DATASET,
            )
            model = build_and_compile(training, {})
            size = training.model_settings().input_size
            resized = tf.image.resize(pixels, [size, size])
            memory = tf.data.Dataset.from_tensor_slices((resized, labels)).shuffle(1024).repeat().batch(args.batch_size)
            paths = {
                "decoding": data.dataset([path], args.batch_size, training=True, size=size),
                "trainer": data.dataset([path], args.batch_size, True, cache=training.cache_examples, size=size),
                "memory": memory.prefetch(2),
                "blended": data.dataset([path], args.batch_size, True, cache=True, fake_source=self_blended, size=size),
            }
            rounds = {key: [] for key in paths}
            warm_up = args.examples // args.batch_size + 2  # one pass fills the caches
            for _ in range(args.rounds):
                for key, batches in paths.items():
                    rounds[key].append(images_per_second(model, args.steps, args.batch_size, warm_up, x=batches))
            rate = {key: statistics.median(values) for key, values in rounds.items()}
            cache_ratio, blend_ratio = rate["trainer"] / rate["memory"], rate["blended"] / rate["trainer"]
            blend_ms = blend_ms_per_pair(resized, args.rounds)
            print(
                f"{name:<16} {rate['decoding']:15.1f} {rate['trainer']:19.1f} {rate['memory']:16.1f}"
                f" {cache_ratio:6.2f} {rate['blended']:19.1f} {blend_ratio:6.2f} {blend_ms:14.2f}"
            )
            figures[name] = {
                "decoding_img_s": rate["decoding"],
                "trainer_path_img_s": rate["trainer"],
                "in_memory_img_s": rate["memory"],
                "trainer_over_memory": cache_ratio,
                "self_blended_img_s": rate["blended"],
                "self_blended_over_trainer": blend_ratio,
                "blend_ms_per_pair": blend_ms,
            }
    BENCH.write(args, figures)


if __name__ == "__main__":
    main()
