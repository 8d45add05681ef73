"""The detection service through a frozen, a killed and a restarted model server, and a history database cut off:
how long each answer takes, and how soon the service recovers (the figures of docs/faults.md).

It starts the local model server (or TF Serving when installed) on an exported
untrained copy of the main job's backbone, and `deepfake-pipeline service` in
front of it at its default flags, then, with a valid upload before each fault:
- frozen: SIGSTOP the model server; time the first upload (its deadline), the
  next (the open circuit) and /readyz; SIGCONT, then time until an upload
  (retried every 0.25 s while answered 503) succeeds;
- killed: SIGKILL the model server; time an upload; keep uploading once a
  second for `--down-s`; start it again on the same ports, and time from the
  moment its model is AVAILABLE (REST status, polled every 0.3 s) to the first
  successful upload;
- history (with `--postgres-url`, a PostgreSQL database the bench may cut off):
  the service keeps its history there; the database refuses connections for
  `--down-s` while uploads go on; then the seconds until /healthz is ok again,
  and whether every check is in the history once.

Before issue 43, the same faults gave: 60 s per upload and for /readyz while
frozen; 17.5-27.7 s of 503s after the model server was AVAILABLE again; a 500
without a verdict for every upload while the database was down.

    python bench/fault_probe.py [--postgres-url postgresql://USER@HOST:PORT/DB]
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import httpx
import skimage.data
import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402 - first: it puts this checkout's packages ahead of an installed copy
from serving_bench import export_bench_model  # noqa: E402

from serving.model_server import launch, model_config  # noqa: E402
from serving.service.database import create_engine
from serving.service.history import CHECKS, engine_url  # noqa: E402

BENCH = _common.Bench(
    "fault_probe",
    "first good upload within 3 s of the model server being AVAILABLE; a frozen model server answered "
    "within 15 s; /readyz within 2 s; no check lost or duplicated by a database outage",
)
IMAGE = cv2.imencode(".jpg", cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))[1].tobytes()


def timed(call: Callable[[], httpx.Response]) -> Tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def upload(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/detect", files={"files": ("face.jpg", IMAGE)}, timeout=180)


def first_good_upload(url: str, patience_s: float = 120.0) -> Tuple[float, int]:
    """(moment, tries) of the first upload answered 200, retried every 0.25 s while answered 503."""
    deadline, tries = time.monotonic() + patience_s, 0
    while time.monotonic() < deadline:
        tries += 1
        if upload(url).status_code == 200:
            return time.monotonic(), tries
        time.sleep(0.25)
    return float("inf"), tries


class ModelServer:
    """The model server in a subprocess on fixed ports, so that it can be frozen, killed and started again."""

    def __init__(self, work: str):
        export_bench_model(os.path.join(work, "models", "bench", "1"), 128)
        paths = model_config.write_serving_configs(
            os.path.join(work, "config"), [model_config.ServingModel("bench", os.path.join(work, "models", "bench"))]
        )
        self.grpc_port, rest_port = _common.free_port(), _common.free_port()
        self.rest_url = f"http://127.0.0.1:{rest_port}"
        self.command = launch.model_server_command(paths[model_config.MODELS_CONFIG_FILE], self.grpc_port, rest_port)
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> float:
        """Starts it; returns when its model was seen AVAILABLE (time.monotonic)."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        launch.wait_until_available(self.rest_url, "bench", self.process)
        return time.monotonic()


def probe_frozen(url: str, server: ModelServer) -> Dict[str, float]:
    assert upload(url).status_code == 200
    server.process.send_signal(signal.SIGSTOP)
    first, first_s = timed(lambda: upload(url))
    second, second_s = timed(lambda: upload(url))
    ready, ready_s = timed(lambda: httpx.get(f"{url}/readyz", timeout=120))
    server.process.send_signal(signal.SIGCONT)
    thawed = time.monotonic()
    good, tries = first_good_upload(url)
    print(
        f"frozen: first upload {first.status_code} in {first_s:.2f} s (Retry-After {first.headers.get('Retry-After')})"
    )
    print(
        f"frozen: next upload {second.status_code} in {second_s:.3f} s; /readyz {ready.status_code} in {ready_s:.3f} s"
    )
    print(f"frozen: after SIGCONT, first good upload in {good - thawed:.2f} s ({tries} tries)", flush=True)
    return {
        "frozen_first_upload_s": round(first_s, 2),
        "frozen_next_upload_s": round(second_s, 3),
        "frozen_readyz_s": round(ready_s, 3),
        "thawed_first_good_upload_s": round(good - thawed, 2),
    }


def probe_killed(url: str, server: ModelServer, down_s: float) -> Dict[str, float]:
    assert upload(url).status_code == 200
    server.process.kill()
    server.process.wait(30)
    first, first_s = timed(lambda: upload(url))
    statuses = set()
    ends = time.monotonic() + down_s
    while time.monotonic() < ends:
        statuses.add(upload(url).status_code)
        time.sleep(1)
    available = server.start()
    good, tries = first_good_upload(url)
    print(f"killed: upload {first.status_code} in {first_s:.3f} s; while down: {sorted(statuses)}")
    print(f"killed: restarted after {down_s:.0f} s; first good upload {good - available:.2f} s after AVAILABLE")
    return {"killed_upload_s": round(first_s, 3), "restarted_first_good_upload_s": round(good - available, 2)}


def allow_connections(database_url: str, allowed: bool) -> None:
    """Lets the database of `database_url` take connections, or refuses them and ends the open ones."""
    name = database_url.rsplit("/", 1)[1]
    admin = sa.create_engine(engine_url(database_url.rsplit("/", 1)[0] + "/postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
        if not allowed:
            connection.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )
    admin.dispose()


def count_checks(database_url: str) -> Tuple[int, int]:
    """(checks, distinct record ids) in the history."""
    engine = create_engine(database_url)
    with engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(CHECKS)).scalar_one()
        distinct = connection.execute(sa.select(sa.func.count(sa.distinct(CHECKS.c.check_id)))).scalar_one()
    engine.dispose()
    return int(total), int(distinct)


def probe_history(url: str, database_url: str, down_s: float) -> Dict[str, float]:
    before, _ = count_checks(database_url)
    allow_connections(database_url, False)
    answers: List[httpx.Response] = []
    ends = time.monotonic() + down_s
    try:
        while time.monotonic() < ends:
            answers.append(upload(url))
        ready = httpx.get(f"{url}/readyz", timeout=30).status_code
        health = httpx.get(f"{url}/healthz", timeout=30).json()
    finally:
        allow_connections(database_url, True)
    restored = time.monotonic()
    while httpx.get(f"{url}/healthz", timeout=30).json()["status"] != "ok":
        time.sleep(0.1)
    caught_up_s = time.monotonic() - restored
    total, distinct = count_checks(database_url)
    verdicts = sum(1 for a in answers if a.status_code == 200)
    unrecorded = sum(1 for a in answers if a.status_code == 200 and not a.json()["results"][0]["recorded"])
    print(
        f"history: {len(answers)} uploads while down: {verdicts} verdicts, {unrecorded} recorded: false; "
        f"/readyz {ready}, /healthz {health['status']} ({health['history']['spooled']} spooled)"
    )
    print(
        f"history: back {caught_up_s:.2f} s after the database; {total - before} new checks, "
        f"{distinct - before} distinct",
        flush=True,
    )
    return {
        "outage_uploads": len(answers),
        "outage_verdicts": verdicts,
        "outage_unrecorded": unrecorded,
        "history_caught_up_s": round(caught_up_s, 2),
        "checks_written": total - before,
        "checks_distinct": distinct - before,
    }


def main() -> None:
    parser = BENCH.parser(__doc__)
    parser.add_argument(
        "--down-s", type=float, default=10.0, help="how long the killed model server and the database stay down"
    )
    parser.add_argument("--postgres-url", help="a PostgreSQL database for the history outage (else it is skipped)")
    args = BENCH.parse_args(parser)
    work = tempfile.mkdtemp(prefix="fault_probe_")
    processes: List[subprocess.Popen] = []
    server = None
    try:
        server = ModelServer(work)
        server.start()
        http_port = _common.free_port()
        history = args.postgres_url or f"sqlite:///{work}/history.sqlite"
        service = [sys.executable, "-m", "pipeline_runner", "service", "--port", str(http_port)]
        service += ["--model-server", f"127.0.0.1:{server.grpc_port}", "--model-name", "bench"]
        service += ["--history-url", history, "--history-spool-dir", os.path.join(work, "spool")]
        processes.append(subprocess.Popen(service, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{http_port}"
        launch.wait_for_http(f"{url}/readyz", processes[0], lambda body: b'"ready":true' in body, 180)
        print(f"Model server: {os.path.basename(server.command[0])}; {os.cpu_count()} cores; service at its defaults")
        figures = probe_frozen(url, server)
        figures.update(probe_killed(url, server, args.down_s))
        if args.postgres_url:
            figures.update(probe_history(url, args.postgres_url, args.down_s))
        BENCH.write(args, figures)
    finally:
        if server and server.process:
            server.process.send_signal(signal.SIGCONT)
            processes.append(server.process)
        _common.stop(processes, work)


if __name__ == "__main__":
    main()
