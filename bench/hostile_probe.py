"""The service and the model server at their default limits under hostile clients: what each probe gets,
how long it takes and what it costs in memory (the figures of docs/hardening.md).

It starts the local model server (or TF Serving when installed) on an
exported untrained copy of the main job's backbone and the detection service
in front of it, both with their default flags, and then runs, in order:
- abandoned: 12 uploads send their headers and half their body, then close;
  a valid client (retrying as Retry-After asks, 90 s at most) then uploads;
- slow: 12 uploads drip 10 bytes a second while a valid client uploads;
- cardinality: 2,000 GETs to distinct unknown paths, then the size of /metrics;
- no 500: the history at offset 2^63, a 10,000-deep JSON array and a list as
  signature name to the model server, and DELETE on the model server;
- amplification: 1,024 instances of a 64 x 64 JPEG (about 1 MB of JSON) and one
  PNG declaring 15000 x 15000 pixels to the model server's REST predict;
- bomb: a 30000 x 30000 PNG of zeros (2.6 MB, every row present) to the service;
- alive: a valid upload at the end;
- freeze: bodies of 200,000 and 600,000 one-byte parts (15 and 46 MB) while /healthz is polled every 50 ms:
  how long the refusal takes and the slowest /healthz meanwhile (parsing on the event loop froze it);
- budget: a second service with keys (bodies of at most 20 MiB, so the budget is 10 of them and a key's share
  4): one key starts 10 uploads that stall at 95 %, and another key's valid upload follows.

    python -m bench.hostile_probe [--only freeze,budget]
"""

import argparse
import base64
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import cv2
import httpx
import skimage.data

from serving.model_server import launch, model_config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from service_bench import PeakMemory, tree_rss_mib  # noqa: E402
from serving_bench import export_bench_model  # noqa: E402

BOUNDARY = "probe-boundary"


def multipart(name: str, data: bytes) -> bytes:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def head(port: int, length: int) -> bytes:
    return (
        f"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def valid_upload(url: str, data: bytes, patience_s: float = 90.0) -> tuple:
    """(status, seconds, tries) of an upload that retries 503s as Retry-After asks, for `patience_s` at most."""
    started, tries = time.monotonic(), 0
    while True:
        tries += 1
        response = httpx.post(f"{url}/v1/detect", files={"files": ("face.jpg", data)}, timeout=120)
        wait = float(response.headers.get("Retry-After", 0))
        if response.status_code != 503 or time.monotonic() - started + wait > patience_s:
            return response.status_code, time.monotonic() - started, tries
        time.sleep(wait)


def png_bomb(side: int) -> bytes:
    """A PNG of side x side RGB zeros with every row present: decoding it needs side * side * 3 bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(9)
    rows = b"\0" * (3 * side + 1) * 100
    data = b"".join(compressor.compress(rows) for _ in range(side // 100)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def probe(url: str, port: int, rest_url: str, service_pid: int, server_pid: int, image: bytes) -> None:
    body = multipart("probe.jpg", image)
    for _ in range(12):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head(port, len(body)) + body[: len(body) // 2])
    status, seconds, tries = valid_upload(url, image)
    print(f"abandoned: 12 half uploads, then a valid one: {status} in {seconds:.2f} s ({tries} tries)", flush=True)

    drippers = []
    for _ in range(12):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(head(port, len(body)))
        drippers.append(sock)
    stop = threading.Event()

    def drip() -> None:
        offset = 0
        while not stop.wait(1.0):
            for sock in drippers:
                try:
                    sock.sendall(body[offset : offset + 10])
                except OSError:
                    continue
            offset += 10

    dripping = threading.Thread(target=drip, daemon=True)
    dripping.start()
    time.sleep(2)
    status, seconds, tries = valid_upload(url, image)
    print(f"slow: 12 uploads dripping 10 B/s, a valid one beside: {status} in {seconds:.2f} s ({tries} tries)")
    stop.set()
    for sock in drippers:
        sock.close()

    with httpx.Client(base_url=url, timeout=30) as client:
        started = time.monotonic()
        for i in range(2000):
            client.get(f"/probe/{i}/{os.urandom(8).hex()}")
        spent = time.monotonic() - started
        started = time.monotonic()
        size = len(client.get("/metrics").content)
        print(
            f"cardinality: 2,000 unknown paths in {spent:.1f} s; /metrics {size} bytes, "
            f"scraped in {1000 * (time.monotonic() - started):.0f} ms"
        )
        print(f"no 500: history offset 2^63: {client.get('/v1/history?offset=9223372036854775808').status_code}")
    predict = f"{rest_url}/v1/models/bench:predict"
    deep = httpx.post(predict, content=b"[" * 10_000 + b"]" * 10_000, timeout=30)
    odd = httpx.post(predict, json={"signature_name": ["x"], "instances": ["a"]}, timeout=30)
    delete = httpx.delete(f"{rest_url}/v1/models/bench", timeout=30)
    print(f"no 500: 10,000-deep JSON {deep.status_code}, list signature {odd.status_code}, DELETE {delete.status_code}")
    print(f"  DELETE answers {delete.headers['content-type']}: {delete.text}")

    face = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR), (64, 64))
    small = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 10])[1]
    instances = [{"b64": base64.b64encode(small.tobytes()).decode()}] * 1024
    payload = json.dumps({"instances": instances}).encode()
    before = tree_rss_mib(server_pid)
    started = time.monotonic()
    with PeakMemory(server_pid) as memory:
        answer = httpx.post(predict, content=payload, timeout=300)
        time.sleep(0.5)
    print(
        f"amplification: 1,024 instances ({len(payload) / 1e6:.2f} MB): {answer.status_code} in "
        f"{time.monotonic() - started - 0.5:.2f} s; model server {before:.0f} MiB before, peak {memory.peak_mib:.0f}, "
        f"after {tree_rss_mib(server_pid):.0f}: {answer.json()}"
    )
    bomb = png_bomb(15000)
    started = time.monotonic()
    with PeakMemory(server_pid) as memory:
        answer = httpx.post(predict, json={"instances": [{"b64": base64.b64encode(bomb).decode()}]}, timeout=300)
        time.sleep(0.5)
    print(
        f"amplification: a 15000x15000 PNG ({len(bomb) / 1e6:.2f} MB): {answer.status_code} in "
        f"{time.monotonic() - started - 0.5:.2f} s; model server peak {memory.peak_mib:.0f} MiB: {answer.json()}"
    )

    bomb = png_bomb(30000)
    before = tree_rss_mib(service_pid)
    started = time.monotonic()
    with PeakMemory(service_pid) as memory:
        answer = httpx.post(f"{url}/v1/detect", files={"files": ("bomb.png", bomb)}, timeout=120)
        elapsed = time.monotonic() - started
        time.sleep(0.5)
    print(
        f"bomb: a 30000x30000 PNG ({len(bomb) / 1e6:.2f} MB): {answer.status_code} in {elapsed:.2f} s; service tree "
        f"{before:.0f} MiB before, peak {memory.peak_mib:.0f}: {answer.json()['results'][0]['error']}"
    )
    response = httpx.post(f"{url}/v1/detect", files={"files": ("alive.jpg", image)}, timeout=120)
    print(f"alive: {response.status_code}, verdict {response.json()['results'][0].get('verdict')}")


def tiny_parts(count: int) -> bytes:
    part = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="p"\r\n\r\nx\r\n'.encode()
    return part * count + f"--{BOUNDARY}--\r\n".encode()


def raw_answer(sock: socket.socket, timeout_s: float) -> bytes:
    """What the server answers on `sock` within `timeout_s` (until it closes or goes quiet)."""
    sock.settimeout(timeout_s)
    received = b""
    try:
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    except OSError:
        pass
    return received


def status_of(answer: bytes) -> str:
    parts = answer.split(b" ", 2)
    return parts[1].decode() if len(parts) > 2 and parts[0].startswith(b"HTTP/") else "none"


def poll_health(url: str, latencies: list, stop: threading.Event) -> None:
    """GETs /healthz every 50 ms until `stop`, appending each answer's latency to `latencies`."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            started = time.monotonic()
            client.get(f"{url}/healthz")
            latencies.append(time.monotonic() - started)
            time.sleep(0.05)


def freeze_probe(url: str, port: int) -> None:
    """Bodies of many tiny parts, while /healthz is polled: the refusal's time and the slowest /healthz."""
    for count in (200_000, 600_000):
        body = tiny_parts(count)
        latencies, stop = [], threading.Event()

        poller = threading.Thread(target=poll_health, args=(url, latencies, stop), daemon=True)
        poller.start()
        time.sleep(0.3)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            try:
                sock.sendall(head(port, len(body)) + body)
            except OSError:
                pass  # the service answered and closed before the whole body went
            answer = raw_answer(sock, 60)
        elapsed = time.monotonic() - started
        time.sleep(0.3)
        stop.set()
        poller.join()
        print(
            f"freeze: {count:,} one-byte parts ({len(body) / 1e6:.0f} MB): {status_of(answer)} in {elapsed:.2f} s; "
            f"slowest /healthz meanwhile {max(latencies):.3f} s ({len(latencies)} polls)",
            flush=True,
        )


def budget_probe(grpc_port: int, work: str) -> None:
    """One key's stalled uploads against another key's valid one, on a service with keys."""
    from serving.service.auth import KeyStore

    history_url = f"sqlite:///{work}/keyed.sqlite"
    store = KeyStore.open(history_url)
    stalling, valid = store.create("stalling"), store.create("valid")
    store.close()
    port, max_body = _common.free_port(), 20 * 1024 * 1024
    command = [sys.executable, "-m", "pipeline_runner", "service", "--port", str(port), "--auth", "keys"]
    command += ["--model-server", f"127.0.0.1:{grpc_port}", "--model-name", "bench", "--history-url", history_url]
    command += ["--max-body-bytes", str(max_body)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        launch.wait_for_http(f"{url}/healthz", process, lambda body: b"ok" in body, 180)
        body = multipart("stalled.bin", b"\0" * (max_body - 1000))
        authorization = f"Authorization: Bearer {stalling}\r\n".encode()
        stalled_head = head(port, len(body)).replace(b"\r\n\r\n", b"\r\n" + authorization + b"\r\n", 1)
        socks = []
        for _ in range(10):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.settimeout(5)
            try:
                sock.sendall(stalled_head + body[: len(body) * 95 // 100])
            except OSError:
                pass  # refused (503) before it was all sent
            socks.append(sock)
        image = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        large = image + b"\0" * (max_body // 2)  # a valid JPEG, padded after its end: half a body
        started = time.monotonic()
        answer = httpx.post(
            f"{url}/v1/detect",
            files={"files": ("valid.jpg", large)},
            headers={"Authorization": f"Bearer {valid}"},
            timeout=120,
        )
        elapsed = time.monotonic() - started
        statuses = [status_of(raw_answer(sock, 0.5)) for sock in socks]
        print(
            f"budget: one key's 10 stalled uploads of {max_body // 2**20} MiB: {statuses.count('503')} refused 503, "
            f"the rest held; another key's upload of {len(large) / 2**20:.0f} MiB: {answer.status_code} in "
            f"{elapsed:.2f} s",
            flush=True,
        )
        for sock in socks:
            sock.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help="comma-separated: freeze, budget (default: every probe)")
    only = set(filter(None, parser.parse_args().only.split(",")))
    work = tempfile.mkdtemp(prefix="hostile_probe_")
    processes = []
    try:
        export_bench_model(os.path.join(work, "models", "bench", "1"), 128)
        paths = model_config.write_serving_configs(
            os.path.join(work, "config"), [model_config.ServingModel("bench", os.path.join(work, "models", "bench"))]
        )
        grpc_port, rest_port, http_port = _common.free_port(), _common.free_port(), _common.free_port()
        command = launch.model_server_command(paths[model_config.MODELS_CONFIG_FILE], grpc_port, rest_port)
        processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        rest_url = f"http://127.0.0.1:{rest_port}"
        launch.wait_until_available(rest_url, "bench", processes[0])
        service = [sys.executable, "-m", "pipeline_runner", "service", "--port", str(http_port)]
        service += ["--model-server", f"127.0.0.1:{grpc_port}", "--model-name", "bench"]
        service += ["--history-url", f"sqlite:///{work}/history.sqlite"]
        processes.append(subprocess.Popen(service, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{http_port}"
        launch.wait_for_http(f"{url}/readyz", processes[1], lambda body: b'"ready":true' in body, 180)
        image = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()
        print(f"Model server: {os.path.basename(command[0])}; {os.cpu_count()} cores; both at their defaults")
        if not only:
            probe(url, http_port, rest_url, processes[1].pid, processes[0].pid, image)
        if not only or "freeze" in only:
            freeze_probe(url, http_port)
        if not only or "budget" in only:
            budget_probe(grpc_port, work)
    finally:
        _common.stop(processes, work)


if __name__ == "__main__":
    main()
