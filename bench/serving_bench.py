"""Serving overhead: REST and gRPC through the model server against the in-process SavedModel call.

In one run, for batches of 1, 8 and 32 face crops (JPEG, 256 px, real photo
texture), calls the same SavedModel three ways, one request at a time, in
alternating blocks (a few requests on each path in turn, the first of each
block untimed so every path is timed warm), so a slow spell of the machine
falls on all three paths alike rather than on whichever ran then:
- in process: the `serving_default` signature of `tf.saved_model.load`;
- gRPC: `PredictionService.Predict` through tensorflow-serving-api's stubs;
- REST: `:predict` in the row format with base64 images.
It prints latency p50/p99, images/s, and the ratio of each served p50 to the
in-process p50 (the serving overhead). The server is TF Serving when
`tensorflow_model_server` is on PATH, else the local model server.

    python bench/serving_bench.py [--model DIR] [--requests 40] [--input-size 128]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict

import _common
import numpy as np
import tensorflow as tf

from deepfake_detection import defaults
from serving.client.local_model import InProcessModel
from serving.client.tf_serving import GrpcClient, ModelTarget, RestClient
from serving.model_server import launch, model_config

BENCH = _common.Bench("serving_bench", "a gRPC call at batch 1 within 1.2x the in-process call (the serving overhead)")
BATCH_SIZES = (1, 8, 32)
MODEL_NAME = "bench"


def face_batch(count: int) -> list:
    import skimage.data

    photo = skimage.data.astronaut()
    rng = np.random.default_rng(count)
    crops = []
    for _ in range(count):
        y, x = rng.integers(0, photo.shape[0] - 256, size=2)
        crops.append(tf.io.encode_jpeg(np.ascontiguousarray(photo[y : y + 256, x : x + 256]), quality=95).numpy())
    return crops


def export_bench_model(export_dir: str, input_size: int, backbone: str = defaults.LOCAL_BACKBONES[0]) -> None:
    """An untrained `backbone` (default: the one the main job trains and pushes), exported as the Trainer does."""
    import keras

    from deepfake_detection.models import export
    from deepfake_detection.models.base import ModelSettings
    from deepfake_detection.models.registry import get_backbone

    keras.utils.set_random_seed(0)
    export.export_saved_model(get_backbone(backbone).build(ModelSettings(input_size=input_size), {}), export_dir)


# Timed requests per path in each block; each block starts with one untimed request.
BLOCK_REQUESTS = 5


def measure(paths: Dict[str, Callable[[list], object]], images: list, requests: int) -> Dict[str, np.ndarray]:
    """Latencies of `requests` calls per path, taken in alternating blocks of BLOCK_REQUESTS."""
    for predict in paths.values():
        for _ in range(3):
            predict(images)
    latencies: Dict[str, list] = {name: [] for name in paths}
    while any(len(times) < requests for times in latencies.values()):
        for name, predict in paths.items():
            predict(images)
            for _ in range(min(BLOCK_REQUESTS, requests - len(latencies[name]))):
                started = time.perf_counter()
                predict(images)
                latencies[name].append(time.perf_counter() - started)
    return {name: np.array(times) for name, times in latencies.items()}


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--model", help="a SavedModel to serve (default: an untrained --backbone exported here)")
    parser.add_argument("--backbone", default=defaults.LOCAL_BACKBONES[0], help="backbone of the default model")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per batch size and path")
    parser.add_argument("--input-size", type=int, default=128, help="input size of the default model")
    args = BENCH.parse_args(parser)

    work = tempfile.mkdtemp(prefix="serving_bench_")
    try:
        model_dir = args.model or os.path.join(work, "export")
        if not args.model:
            export_bench_model(model_dir, args.input_size, args.backbone)
        shutil.copytree(model_dir, os.path.join(work, "models", MODEL_NAME, "1"))
        paths = model_config.write_serving_configs(
            os.path.join(work, "config"),
            [model_config.ServingModel(MODEL_NAME, os.path.join(work, "models", MODEL_NAME))],
        )
        grpc_port, rest_port = _common.free_port(), _common.free_port()
        command = launch.model_server_command(paths[model_config.MODELS_CONFIG_FILE], grpc_port, rest_port)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            launch.wait_until_available(f"http://127.0.0.1:{rest_port}", MODEL_NAME, server)
            BENCH.write(args, run(command[0], model_dir, grpc_port, rest_port, args.requests))
        finally:
            server.terminate()
            server.wait(timeout=30)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(server_name: str, model_dir: str, grpc_port: int, rest_port: int, requests: int) -> dict:
    """Prints and returns {"batch N": {path: {p50_ms, p99_ms, images_s, over_in_process}}}."""
    target = ModelTarget(MODEL_NAME)
    paths = {
        "in-process": InProcessModel(model_dir).predict,
        "gRPC": GrpcClient(f"127.0.0.1:{grpc_port}", target).predict,
        "REST": RestClient(f"http://127.0.0.1:{rest_port}", target).predict,
    }
    print(
        f"Server: {os.path.basename(server_name)}; model {model_dir}; {requests} sequential requests per cell, "
        f"in alternating blocks of {BLOCK_REQUESTS}"
    )
    print(f"{'batch':>5}  {'path':<10} {'p50 ms':>8} {'p99 ms':>8} {'images/s':>9} {'p50 / in-process':>17}")
    figures = {}
    for batch in BATCH_SIZES:
        images = face_batch(batch)
        baseline = None
        cells = figures[f"batch {batch}"] = {}
        for name, latencies in measure(paths, images, requests).items():
            p50, p99 = np.percentile(latencies, [50, 99]) * 1000
            baseline = baseline or p50
            rate = batch * len(latencies) / latencies.sum()
            print(f"{batch:>5}  {name:<10} {p50:8.2f} {p99:8.2f} {rate:9.1f} {p50 / baseline:16.2f}x", flush=True)
            cells[name] = {"p50_ms": p50, "p99_ms": p99, "images_s": rate, "over_in_process": p50 / baseline}
    return figures


if __name__ == "__main__":
    sys.exit(main())
