"""Fair share of the detection service's queue: one key bursting, another sending one request at a time.

Starts the local model server (or TF Serving when installed) on an untrained
copy of the main job's backbone and the detection service with `--auth keys`
in front of it, makes two keys, then runs two clients at once for each
admission setting:
- `burst`: BURSTERS threads posting face images back to back, retrying a
  refusal after 50 ms whatever Retry-After says (a client that ignores it);
- `steady`: one request at a time, `--steady-requests` of them, no retry.
It prints, per setting, what the steady client got (answered 200, refused,
latency p50/p90) and the burst's throughput and refusals. The settings: the
per-key share as wide as the whole service (what a global queue alone gives),
then the service's defaults (1 analysis running and 3 waiting per key).

    python bench/fair_share_bench.py [--steady-requests 20]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import cv2
import httpx
import numpy as np
import skimage.data

from serving.model_server import launch, model_config
from serving.service.auth import KeyStore
from serving.service.settings import ServiceSettings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from serving_bench import export_bench_model  # noqa: E402

BURSTERS = 12
DEFAULTS = ServiceSettings()
SETTINGS = {
    "global queue only": (DEFAULTS.max_in_flight, DEFAULTS.max_queued),
    "per-key share (defaults)": (DEFAULTS.max_in_flight_per_key, DEFAULTS.max_queued_per_key),
}


def post(client: httpx.Client, key: str, image: bytes) -> httpx.Response:
    return client.post("/v1/detect", files={"files": ("face.jpg", image)}, headers={"Authorization": f"Bearer {key}"})


def run_setting(url: str, keys: dict, image: bytes, steady_requests: int) -> dict:
    """Both clients at once; the steady client's (status, seconds) per request and the burst's counts."""
    stop = threading.Event()
    burst = {"200": 0, "refused": 0}
    lock = threading.Lock()

    def burster() -> None:
        with httpx.Client(base_url=url, timeout=600) as client:
            while not stop.is_set():
                status = post(client, keys["burst"], image).status_code
                with lock:
                    burst["200" if status == 200 else "refused"] += 1
                if status != 200:
                    time.sleep(0.05)

    threads = [threading.Thread(target=burster) for _ in range(BURSTERS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # the burst holds the queue before the steady client starts
    steady = []
    with httpx.Client(base_url=url, timeout=600) as client:
        for _ in range(steady_requests):
            begun = time.perf_counter()
            status = post(client, keys["steady"], image).status_code
            steady.append((status, time.perf_counter() - begun))
    stop.set()
    for thread in threads:
        thread.join()
    return {"steady": steady, "burst": burst, "seconds": time.perf_counter() - started}


def report(name: str, result: dict) -> None:
    steady = result["steady"]
    answered = [seconds for status, seconds in steady if status == 200]
    refused = {status for status, _ in steady if status != 200}
    latency = (
        f"latency p50 {np.percentile(answered, 50):.2f} s, p90 {np.percentile(answered, 90):.2f} s"
        if answered
        else "no answer"
    )
    burst = result["burst"]
    print(f"{name}:")
    print(
        f"  steady client: {len(answered)}/{len(steady)} answered 200"
        f"{' (refused: ' + ', '.join(map(str, sorted(refused))) + ')' if refused else ''}, {latency}"
    )
    print(
        f"  burst client ({BURSTERS} threads): {burst['200']} answered 200 "
        f"({burst['200'] / result['seconds']:.2f}/s), {burst['refused']} refused"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steady-requests", type=int, default=20)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="fair_share_bench_")
    processes = []
    try:
        export_bench_model(os.path.join(work, "models", "bench", "1"), 128)
        paths = model_config.write_serving_configs(
            os.path.join(work, "config"), [model_config.ServingModel("bench", os.path.join(work, "models", "bench"))]
        )
        grpc_port, rest_port = _common.free_port(), _common.free_port()
        command = launch.model_server_command(paths[model_config.MODELS_CONFIG_FILE], grpc_port, rest_port)
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        launch.wait_until_available(f"http://127.0.0.1:{rest_port}", "bench", processes[0])
        history_url = f"sqlite:///{work}/history.sqlite"
        store = KeyStore.open(history_url)
        keys = {name: store.create(name) for name in ("burst", "steady")}
        store.close()
        image = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        print(
            f"Model server: {os.path.basename(command[0])}; {os.cpu_count()} cores; service: "
            f"{DEFAULTS.max_in_flight} analyses at once, {DEFAULTS.max_queued} waiting; "
            "512x512 one-face JPEG per request"
        )
        for name, (in_flight, queued) in SETTINGS.items():
            http_port = _common.free_port()
            service = [
                sys.executable,
                "-m",
                "pipeline_runner",
                "service",
                "--port",
                str(http_port),
                "--auth",
                "keys",
            ]
            service += ["--model-server", f"127.0.0.1:{grpc_port}", "--model-name", "bench"]
            service += ["--history-url", history_url]
            service += ["--max-in-flight-per-key", str(in_flight), "--max-queued-per-key", str(queued)]
            process = subprocess.Popen(service, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url = f"http://127.0.0.1:{http_port}"
            try:
                launch.wait_for_http(f"{url}/readyz", process, lambda body: b'"ready":true' in body, 180)
                with httpx.Client(base_url=url, timeout=600) as client:
                    post(client, keys["steady"], image).raise_for_status()  # warm-up
                report(
                    f"{name}: {in_flight} running, {queued} waiting per key",
                    run_setting(url, keys, image, args.steady_requests),
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        _common.stop(processes, work)


if __name__ == "__main__":
    main()
