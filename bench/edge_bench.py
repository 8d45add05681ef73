"""Edge runtimes against the SavedModel, and live verdicts on a 720p 30 fps source, on this CPU.

In one run:
- trains a small face classifier (`--backbone`, weights none) for a few
  epochs on photo crops, half of them with a blurred patch pasted in, so its
  scores spread and an export that changes them moves its AUC; exports it as
  the Trainer does (SavedModel, then `models/edge.py`'s exports, calibrated on
  the training crops and checked on held-out ones);
- per face, from the encoded crop to P(fake) as `detect --local` runs it, one
  face per call on `--threads` threads (2: the issue's machine), in
  alternating blocks (`serving_bench.measure`): the SavedModel
  (`InProcessModel`) against each edge export (`runtimes.EdgeModel`); the
  ratio is the SavedModel's p50 over the export's, and the AUC delta the
  export's held-out AUC minus the SavedModel's;
- live: `live --local --realtime` on a generated 1280x720 30 fps H.264 video
  of a real face, `--live-seconds` long, with the SavedModel and with
  tflite-int8: updates a second, median and p90 `latency_s`, and resident
  memory after the first tenth and at the end.

    python bench/edge_bench.py [--backbone meso4] [--requests 40] [--live-seconds 60]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

import _common
import numpy as np

BENCH = _common.Bench(
    "edge_bench",
    "tflite-int8 per face >= 2x faster than the SavedModel at a held-out AUC at most 0.01 below it (fp16 and onnx "
    "within 0.005); live on 720p 30 fps: >= 5 updates/s, median latency_s <= 0.5 s, memory flat",
)
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat")
CROP = 256
LIVE_RUNTIMES = ("savedmodel", "tflite-int8")


def labelled_crops(count: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """uint8 [count, 256, 256, 3] photo crops and labels: every other one fake, a blurred patch pasted in."""
    import cv2
    import skimage.data

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in PHOTOS]
    photos = [np.dstack([p] * 3) if p.ndim == 2 else p[..., :3] for p in photos]
    crops, labels = [], []
    for number in range(count):
        photo = photos[rng.integers(len(photos))]
        y, x = rng.integers(0, photo.shape[0] - CROP), rng.integers(0, photo.shape[1] - CROP)
        crop = np.ascontiguousarray(photo[y : y + CROP, x : x + CROP])
        if number % 2:
            top, left = rng.integers(32, CROP - 128, size=2)
            patch = crop[top : top + 96, left : left + 96]
            crop[top : top + 96, left : left + 96] = cv2.GaussianBlur(patch, (0, 0), 3)
        crops.append(crop)
        labels.append(number % 2)
    return np.stack(crops), np.array(labels)


def write_records(path: str, crops: np.ndarray, labels: np.ndarray) -> None:
    import tensorflow as tf

    from deepfake_detection import contract

    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for crop, label in zip(crops, labels, strict=True):
            feature = {
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[encode(crop)])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def encode(crop: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))[1].tobytes()


def trained_version(work: str, backbone: str, epochs: int) -> Tuple[str, dict, List[bytes]]:
    """(version folder, edge check report, held-out encoded crops) of a briefly trained `backbone`."""
    import keras

    from deepfake_detection import contract
    from deepfake_detection.evaluation import operating_point
    from deepfake_detection.models import edge, export
    from deepfake_detection.models.base import ModelSettings
    from deepfake_detection.models.registry import get_backbone
    from deepfake_detection.models.training import compile_model

    keras.utils.set_random_seed(0)
    found = get_backbone(backbone)
    model = found.build(ModelSettings(input_size=found.input_size), found.default_hparams())
    compile_model(model, 1e-3)
    train, train_labels = labelled_crops(256, seed=1)
    test, test_labels = labelled_crops(256, seed=2)
    model.fit(train.astype("float32"), train_labels, batch_size=16, epochs=epochs, verbose=0)
    version = os.path.join(work, "models", backbone, "1")
    scores = model.predict(test.astype("float32"), verbose=0).ravel()
    fitted = operating_point.fit_operating_point(scores[test_labels == 0].tolist(), scores[test_labels == 1].tolist())
    export.export_saved_model(model, version, fitted=fitted)
    files = {split: os.path.join(work, f"{split}.gz") for split in (contract.TRAIN_SPLIT, contract.TEST_SPLIT)}
    write_records(files[contract.TRAIN_SPLIT], train, train_labels)
    write_records(files[contract.TEST_SPLIT], test, test_labels)
    report = edge.write_edge_exports(
        model, version, [files[contract.TRAIN_SPLIT]], [files[contract.TEST_SPLIT]], contract.TEST_SPLIT
    )
    return version, report, [encode(crop) for crop in test[:8]]


def per_face(version: str, report: dict, crops: List[bytes], threads: int, requests: int) -> Dict[str, dict]:
    """p50 per face from the encoded crop, the ratio to the SavedModel, the export's size and its AUC delta."""
    from serving_bench import measure

    from deepfake_detection import contract
    from serving.client.local_model import InProcessModel
    from serving.client.runtimes import EdgeModel

    paths = {contract.RUNTIME_SAVEDMODEL: InProcessModel(version).predict}
    for runtime, row in report["exports"].items():
        if row["status"] == "pushed":
            paths[runtime] = EdgeModel(version, runtime, threads).predict
    latencies = measure(paths, crops[:1], requests)
    baseline = float(np.median(latencies[contract.RUNTIME_SAVEDMODEL]))
    reference_auc = report["savedmodel"]["test_auc"]
    print(f"{'runtime':<12} {'p50 ms':>8} {'speed-up':>9} {'MB':>7} {'AUC':>7} {'AUC delta':>10} {'max |diff|':>11}")
    figures = {}
    for runtime, times in latencies.items():
        row = report["exports"].get(runtime, {**report["savedmodel"], "max_abs_difference": 0.0})
        p50 = float(np.median(times))
        delta = row["test_auc"] - reference_auc
        figures[runtime] = {
            "p50_ms": 1000 * p50,
            "speed_up": baseline / p50,
            "size_mb": row["size_bytes"] / 1e6,
            "auc": row["test_auc"],
            "auc_delta": delta,
            "max_abs_difference": row["max_abs_difference"],
        }
        print(
            f"{runtime:<12} {1000 * p50:8.2f} {baseline / p50:8.2f}x {row['size_bytes'] / 1e6:7.2f} "
            f"{row['test_auc']:7.4f} {delta:+10.4f} {row['max_abs_difference']:11.5f}",
            flush=True,
        )
    kept_out = ("status", "reason", "test_auc", "max_abs_difference")
    for runtime, row in report["exports"].items():
        if row["status"] != "pushed":
            figures[runtime] = {key: row.get(key) for key in kept_out}
            print(f"{runtime:<12} {row['status']}: {row['reason']} (held-out AUC {row.get('test_auc')})")
    return figures


def live_source(work: str, seconds: float) -> str:
    """A 1280x720 30 fps H.264 video of a real face, `seconds` long (a 10 s sample looped)."""
    import imageio_ffmpeg

    from deepfake_detection import contract, sample_data
    from deepfake_detection.ingest.readers import read_dataset

    root = os.path.join(work, "live")
    sample_data.generate(root, 2, seed=3, seconds=10.0, frame_size=(1280, 720))
    clip = next(r.path for r in sorted(read_dataset(root), key=lambda r: r.path) if r.label == contract.REAL_LABEL)
    target = os.path.join(work, "live_720p30.mp4")
    loops = str(int(seconds // 10) + 1)
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-stream_loop", loops, "-i", clip]
    command += ["-vf", "fps=30", "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-y", target]
    subprocess.run(command, check=True)
    return target


def resident_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def live_run(version: str, runtime: str, source: str, seconds: float) -> dict:
    """`live --local --realtime` on `source`: updates/s, latency_s median and p90, memory early and at the end."""
    from serving.client.live import FrameReader, live_analyzer, open_source, updates
    from serving.client.runtimes import read_operating_point

    analyzer = live_analyzer(version, {}, runtime)
    capture = open_source(source)
    reader = FrameReader(capture, live=True, fps=capture.get(5), paced=True)  # 5: cv2.CAP_PROP_FPS
    latencies, early_mb, started = [], None, time.monotonic()
    try:
        for update in updates(reader, analyzer, read_operating_point(version), 8, 30.0):
            latencies.append(update["latency_s"])
            if early_mb is None and time.monotonic() - started > seconds / 10:
                early_mb = resident_mb()
    finally:
        reader.close()
    wall = time.monotonic() - started
    figures = {
        "updates_per_s": len(latencies) / wall,
        "latency_p50_s": float(np.median(latencies)),
        "latency_p90_s": float(np.percentile(latencies, 90)),
        "memory_early_mb": early_mb,
        "memory_end_mb": resident_mb(),
    }
    print(
        f"live {runtime:<12} {figures['updates_per_s']:5.2f} updates/s  latency p50 {figures['latency_p50_s']:.3f} s "
        f"p90 {figures['latency_p90_s']:.3f} s  memory {early_mb:.0f} -> {figures['memory_end_mb']:.0f} MB",
        flush=True,
    )
    return figures


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--backbone", default="meso4", help="the face classifier to train and export")
    parser.add_argument("--epochs", type=int, default=4, help="training epochs on the bench's crops")
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime (the issue's 2 cores)")
    parser.add_argument("--requests", type=int, default=40, help="timed single-face calls per runtime")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="length of the live source (0: no live run)")
    args = BENCH.parse_args(parser)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    work = tempfile.mkdtemp(prefix="edge_bench_")
    try:
        version, report, crops = trained_version(work, args.backbone, args.epochs)
        figures = {"per_face": per_face(version, report, crops, args.threads, args.requests)}
        if args.live_seconds:
            source = live_source(work, args.live_seconds)
            figures["live"] = {r: live_run(version, r, source, args.live_seconds) for r in LIVE_RUNTIMES}
        BENCH.write(args, figures)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
