"""Detection service: time to a verdict for a 10-second 720p video, and image throughput under concurrency.

In one run it starts the local model server (or TF Serving when installed) on
an exported untrained copy of the main job's backbone, the detection service
in front of it over gRPC, and then:
- posts a 10 s 1280x720 sample video (a real face, 32 sampled frames) several
  times and prints the median time to a verdict split into decode (isolated
  worker), face detection, model calls and overhead (upload, parsing, history,
  HTTP), from the service's own timings against the client's clock;
- posts single face images, then 3 s 720p clips, from 1, 4 and 16
  concurrent clients for a fixed number of requests each and prints
  requests/s, latency p50/p99 and the peak resident memory of the service's
  process tree (service, decode servers and their children).
Before any request it prints the service's time from start to ready (`/readyz`
answers 200) and its process tree's resident memory at idle. `--service-python`
and `--service-dir` run the service on another installation or checkout (the
slim `.[serving]` install against the full one, docs/deployment.md); the model
server always runs here.

    python bench/service_bench.py [--model DIR] [--repeats 3] [--image-requests 48] [--video-requests 16]
        [--service-python PYTHON] [--service-dir CHECKOUT]
"""

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import _common
import cv2
import httpx
import numpy as np
import skimage.data
from serving_bench import export_bench_model

from deepfake_detection import sample_data
from serving.model_server import launch, model_config

BENCH = _common.Bench(
    "service_bench", "a 10 s 720p video's verdict within 1.5 s; throughput and memory under 1, 4 and 16 clients"
)
CONCURRENCY = (1, 4, 16)


def post(url: str, name: str, data: bytes) -> dict:
    response = httpx.post(f"{url}/v1/detect", files={"files": (name, data)}, timeout=600)
    response.raise_for_status()
    return response.json()["results"][0]


def video_breakdown(url: str, video: str, repeats: int) -> dict:
    """Prints and returns the median seconds to a verdict, split into decode, detection, model and overhead."""
    data = open(video, "rb").read()
    post(url, "warmup.mp4", data)
    rows = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = post(url, os.path.basename(video), data)
        wall = time.perf_counter() - started
        timings = result["timings_s"]
        rows.append([timings["decode"], timings["detection"], timings["model"], wall - timings["total"], wall])
    decode, detection, model, overhead, wall = np.median(np.array(rows), axis=0)
    print(
        f"10 s 1280x720 video, {result['frames_analysed']} frames sampled, {len(result['faces'])} faces, "
        f"median of {repeats}:"
    )
    for name, value in (("decode", decode), ("detection", detection), ("model calls", model), ("overhead", overhead)):
        print(f"  {name:<12} {value:7.3f} s  {100 * value / wall:5.1f} %")
    print(f"  {'verdict in':<12} {wall:7.3f} s  ({result['verdict']}, P(fake) {result['fake_probability']:.3f})")
    return {"decode_s": decode, "detection_s": detection, "model_s": model, "overhead_s": overhead, "verdict_s": wall}


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        try:
            with open(f"/proc/{current}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


class PeakMemory:
    """Samples a process tree's resident memory every 0.25 s while in use; `peak_mib` is the highest seen."""

    def __init__(self, pid: int):
        self.pid, self.peak_mib, self._stop = pid, 0.0, threading.Event()

    def __enter__(self) -> "PeakMemory":
        def sample() -> None:
            while not self._stop.is_set():
                self.peak_mib = max(self.peak_mib, tree_rss_mib(self.pid))
                self._stop.wait(0.25)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def throughput(url: str, title: str, name: str, upload: bytes, requests: int, service_pid: int) -> dict:
    """Requests/s, latency and the service tree's peak memory with 1, 4 and 16 clients posting `upload`; printed and
    returned by number of clients."""
    post(url, f"warmup-{name}", upload)
    print(f"{title}, {requests} requests per level:")
    print(f"  {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'peak MiB':>9}  (service process tree)")
    figures = {}
    for clients in CONCURRENCY:

        def timed(_: int) -> tuple:
            started = time.perf_counter()
            timings = post(url, name, upload)["timings_s"]
            return time.perf_counter() - started, timings["decode"], timings["detection"], timings["model"]

        started = time.perf_counter()
        with PeakMemory(service_pid) as memory, ThreadPoolExecutor(clients) as pool:
            rows = np.array(list(pool.map(timed, range(requests))))
        rate = requests / (time.perf_counter() - started)
        p50, p99 = np.percentile(rows[:, 0], [50, 99]) * 1000
        decode, detection, model = np.median(rows[:, 1:], axis=0) * 1000
        print(
            f"  {clients:>7} {rate:8.2f} {p50:8.1f} {p99:8.1f} {memory.peak_mib:9.0f}   "
            f"(median decode {decode:.0f} ms, "
            f"detection {detection:.0f} ms, model {model:.0f} ms)",
            flush=True,
        )
        figures[f"{clients} clients"] = {
            "requests_s": rate,
            "p50_ms": p50,
            "p99_ms": p99,
            "peak_mib": memory.peak_mib,
            "decode_ms": decode,
            "detection_ms": detection,
            "model_ms": model,
        }
    return figures


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument("--model", help="a SavedModel to serve (default: an untrained blend_resnet exported here)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image-requests", type=int, default=48)
    parser.add_argument("--video-requests", type=int, default=16)
    parser.add_argument("--service-python", default=sys.executable, help="the interpreter that runs the service")
    parser.add_argument("--service-dir", help="the checkout the service runs from (default: this one)")
    args = BENCH.parse_args(parser)
    work = tempfile.mkdtemp(prefix="service_bench_")
    processes = []
    try:
        if args.model:
            shutil.copytree(args.model, os.path.join(work, "models", "bench", "1"))
        else:
            export_bench_model(os.path.join(work, "models", "bench", "1"), 128)
        paths = model_config.write_serving_configs(
            os.path.join(work, "config"), [model_config.ServingModel("bench", os.path.join(work, "models", "bench"))]
        )
        grpc_port, rest_port, http_port = (_common.free_port() for _ in range(3))
        command = launch.model_server_command(paths[model_config.MODELS_CONFIG_FILE], grpc_port, rest_port)
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        launch.wait_until_available(f"http://127.0.0.1:{rest_port}", "bench", processes[0])
        service = [args.service_python, "-m", "pipeline_runner", "service", "--port", str(http_port)]
        service += ["--model-server", f"127.0.0.1:{grpc_port}", "--model-name", "bench"]
        service += ["--history-url", f"sqlite:///{work}/history.sqlite"]
        # A queue as deep as the most clients: every request is served and timed (the default answers
        # the 11th waiting request 503 + Retry-After).
        service += ["--max-queued", str(max(CONCURRENCY))]
        started = time.perf_counter()
        processes.append(
            subprocess.Popen(service, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=args.service_dir)
        )
        url = f"http://127.0.0.1:{http_port}"
        launch.wait_for_http(f"{url}/readyz", processes[1], lambda body: b'"ready":true' in body, 180)
        ready_s = time.perf_counter() - started
        time.sleep(5)
        print(
            f"Service ({args.service_python}): ready {ready_s:.2f} s after start, "
            f"{tree_rss_mib(processes[1].pid):.0f} MiB resident at idle (process tree)",
            flush=True,
        )
        part = sample_data.generate(os.path.join(work, "video"), 2, seed=3, seconds=10.0, frame_size=(1280, 720))
        video = os.path.join(part, sorted(f for f in os.listdir(part) if f.endswith(".mp4"))[0])
        print(
            f"Model server: {os.path.basename(command[0])}; service: deepfake-pipeline service; {os.cpu_count()} cores"
        )
        figures = {"video_10s_720p": video_breakdown(url, video, args.repeats)}
        image = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        title = "One-face images (scikit-image's astronaut, 512x512 JPEG)"
        figures["images"] = throughput(url, title, "face.jpg", image, args.image_requests, processes[1].pid)
        part = sample_data.generate(os.path.join(work, "clip"), 2, seed=4, seconds=3.0, frame_size=(1280, 720))
        clip = open(os.path.join(part, sorted(f for f in os.listdir(part) if f.endswith(".mp4"))[0]), "rb").read()
        title = "3 s 1280x720 clips (32 frames sampled each)"
        figures["clips_3s_720p"] = throughput(url, title, "clip.mp4", clip, args.video_requests, processes[1].pid)
        BENCH.write(args, figures)
    finally:
        _common.stop(processes, work)


if __name__ == "__main__":
    main()
