"""The detection service: upload a video or image, get a verdict.

    python -m serving.detection_service --model-server localhost:8500 --port 8080

Without `--model-name` it serves the model the model server has: the only one, or `ensemble` among several
(`serving/served_model.py`).

Routes:
    POST /v1/detect           multipart files (field `files`): one answer per file (`?explain=true`: with each
                              face's crop box and map of where it looks manipulated, docs/explanations.md)
    POST /v1/jobs             the same, in the background; GET /v1/jobs/<id> shows progress, then the answers
    GET  /v1/history          the checks so far, newest first (`limit`, `offset`)
    GET  /v1/model            the served model: versions, operating point, model card (JSON)
    GET  /v1/model/card       the served version's model card, as a page
    GET  /healthz, /readyz    process alive; model server reachable and the model AVAILABLE
    GET  /metrics             Prometheus: requests, latencies, verdicts, errors by kind
    GET  /                    the web page

With `--auth keys` every /v1/* route needs `Authorization: Bearer KEY` (keys
from `deepfake-pipeline keys create`): each check and job belongs to its key's
principal, and each key has its own share of the queue. The service refuses to
listen beyond loopback without keys unless told so (docs/serving-auth.md).

Each file runs the pipeline's own sampling, face detection and crop, then the
model server in batches over gRPC (TF Serving or the local model server).
Limits answer 4xx naming the limit: the body size (413), the media type by
content (415), the duration and resolution and undecodable media (422), a
body that stalls or takes too long to arrive (408). An image's resolution is
read from its header before anything decodes it. A request takes its queue
place only once its whole body has arrived, and gives it back however it
ends (see `serving.admission`); a request whose client went away while it
waited is not analysed, and nothing is written to the history for it.
Decoding runs in an isolated process with a time limit, so a decoder crash or
hang costs one file, not the service. This module holds the service (the
analyses, jobs and routes) and its entry point; beside it: its settings
(`service_settings`), metrics (`service_metrics`), request bodies and clients
that leave (`uploads`), admission (`admission`) and the video analyser
(`video_analysis`). Uploads stay in memory (and, while the
decoder reads them, in a RAM-backed temporary file); the history keeps the
file's name, type, size and SHA-256, never the media.
"""

import argparse
import asyncio
import ctypes
import dataclasses
import hashlib
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, List, Optional, Tuple

import cv2
import numpy as np
import prometheus_client
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from deepfake_detection.evaluation import model_card, video_scores
from serving import served_model
from serving.admission import KEY_QUEUE_FULL, Admission, BodyBudget, Place
from serving.auth import KeyStore, Principal, bearer_key
from serving.clients import GrpcClient, ModelTarget, ServingError
from serving.history import Check, History
from serving.media import KIND_IMAGE, IsolatedDecoder, MediaError, check_declared_pixels, classify, public_message
from serving.service_metrics import Metrics, RequestMetrics
from serving.service_settings import ServiceSettings, auth_mode
from serving.tf_serving_api import ModelVersionStatus
from serving.uploads import (
    CLIENT_GONE,
    Upload,
    abandoned_check,
    parse_uploads,  # noqa: F401 - importable from here too, its old home
    read_uploads,
    watch_disconnect,
)
from serving.video_analysis import VideoAnalyzer

# A grey face, scored to ask the model server which version answers and with which operating point.
PROBE_FACE = cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))[1].tobytes()
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The largest OFFSET SQLite and PostgreSQL take (a signed 64-bit integer).
MAX_HISTORY_OFFSET = 2**63 - 1


class DetectionService:
    """Everything the routes share: the analyzer, the decoder, the history, metrics and background jobs."""

    def __init__(self, settings: ServiceSettings, model: Any = None, decoder: Optional[IsolatedDecoder] = None):
        self.settings = settings
        self.client = model or GrpcClient(
            settings.model_server, ModelTarget(settings.model_name, label=settings.model_label)
        )
        self.analyzer = VideoAnalyzer(
            self.client, settings.ingest_config(), settings.rule, settings.operating_point(), settings.batch_size
        )
        self.decoder = decoder or IsolatedDecoder(settings.decode_timeout_s)
        self.history = History(settings.history_url, settings.history_pool_size)
        self.metrics = Metrics()
        self.admission = Admission(
            settings.max_in_flight,
            settings.max_queued,
            max_in_flight_per_key=settings.max_in_flight_per_key,
            max_queued_per_key=settings.max_queued_per_key,
        )
        self.bodies = BodyBudget(self.admission.capacity * settings.max_body_bytes)
        self.keys = KeyStore(self.history.engine) if settings.auth == "keys" else None
        self.metrics.watch(self.admission)

    def model_info(self) -> dict:
        """The served model: its versions' states, the operating point of the version that answers now (from a
        one-face probe, so it is the model server's own), and that version's model card when it can be read."""
        versions = [
            {"version": s.version, "state": ModelVersionStatus.State.Name(s.state)}
            for s in self.client.status().model_version_status
        ]
        probe = self.client.predict([PROBE_FACE])
        point = probe.operating_point
        info = {
            "model_name": self.settings.model_name,
            "versions": versions,
            "model_version": probe.model_version,
            "operating_point": point.to_dict() if point else None,
            "operating_point_override": (self.analyzer.point.to_dict() if self.analyzer.point else None),
            "card": None,
        }
        folder = self._version_folder(probe.model_version)
        if folder:
            info["card"] = model_card.read_card(folder)
        return info

    def card_html(self) -> Optional[str]:
        """The served version's model card as a page, when the service can read the model base path."""
        folder = self._version_folder(self.client.predict([PROBE_FACE]).model_version)
        return model_card.read_card_html(folder) if folder else None

    def _version_folder(self, version: Optional[int]) -> Optional[str]:
        if not self.settings.model_base_path or version is None:
            return None
        return os.path.join(self.settings.model_base_path, self.settings.model_name, str(version))

    def analyse(
        self,
        upload: Upload,
        thumbnails: bool,
        progress: Any = None,
        principal: Optional[str] = None,
        abandoned: Callable[[], bool] = lambda: False,
        explain: bool = False,
    ) -> Tuple[int, dict]:
        """(HTTP status, answer) for one file; every outcome is counted, and recorded in the history as
        `principal`'s check unless `abandoned()` says that nobody is left to receive it."""
        status, answer = analyse_upload(
            self.analyzer,
            self.decoder,
            self.settings.model_name,
            upload,
            thumbnails,
            progress,
            explain,
        )
        if abandoned():
            self.metrics.errors.labels("client_gone").inc()
            return CLIENT_GONE, answer
        if status == 200:
            self.metrics.verdicts.labels(answer["verdict"]).inc()
        else:
            self.metrics.errors.labels(answer["error"]["kind"]).inc()
        self.history.record(
            Check(
                file_name=upload.file_name,
                media_type=answer["media_type"],
                size_bytes=answer["size_bytes"],
                sha256=answer["sha256"],
                verdict=answer.get("verdict"),
                fake_probability=answer.get("fake_probability"),
                model_name=self.settings.model_name if status == 200 else None,
                model_version=answer.get("model_version"),
                error=answer["error"]["message"] if status != 200 else None,
                principal=principal,
            )
        )
        return status, answer

    def analyse_all(
        self,
        uploads: List[Upload],
        thumbnails: bool,
        progress: Any = None,
        principal: Optional[str] = None,
        abandoned: Callable[[], bool] = lambda: False,
        explain: bool = False,
    ) -> Tuple[int, dict]:
        """Every file in turn; once `abandoned()` (the client went away) the rest are not analysed at all."""
        results = []
        for index, upload in enumerate(uploads):
            if abandoned():
                self.metrics.errors.labels("client_gone").inc()
                return CLIENT_GONE, {"results": results}

            def report(stage: str, fraction: float, index: int = index, name: str = upload.file_name) -> None:
                if progress:
                    progress(index, len(uploads), name, stage, fraction)

            status, answer = self.analyse(upload, thumbnails, report, principal, abandoned, explain)
            if status == CLIENT_GONE:
                return CLIENT_GONE, {"results": results}
            results.append({"status": status, **answer})
        return combined_status([r["status"] for r in results]), {"results": results}

    def start_job(
        self,
        uploads: List[Upload],
        thumbnails: bool,
        place: Place,
        principal: Optional[str] = None,
        explain: bool = False,
    ) -> str:
        """Runs an admitted request in the background: `queued` until a slot frees, then `running`.

        Every change of the job is written to the shared database, so any
        replica on it answers `GET /v1/jobs/<id>` (to `principal`, or an
        admin). The job's thread owns `place` once started; a job's checks are
        recorded even if its creator has gone, since any client may fetch the
        job later.
        """
        job_id = uuid.uuid4().hex
        job = {"job_id": job_id, "state": "queued", "files": len(uploads), "file_index": 0, "stage": "queued"}
        self.history.save_job(job, principal)

        def update(**changes: Any) -> None:
            job.update(changes)
            self.history.save_job(job)

        def progress(index: int, total: int, name: str, stage: str, fraction: float) -> None:
            update(file_index=index, file_name=name, stage=stage, progress=round((index + fraction) / total, 3))

        def run() -> None:
            try:
                status, answer = self.admission.run(
                    place,
                    lambda: self.analyse_all(uploads, thumbnails, progress, principal, explain=explain),
                    lambda: update(state="running"),
                )
                update(state="done", status=status, progress=1.0, stage="done", **answer)
            except Exception as e:  # noqa: BLE001 - a failed job reports its error; the service goes on
                logging.exception("Job %s failed", job_id)
                update(state="failed", error=f"{type(e).__name__}: {e}")

        threading.Thread(target=run, name=f"job-{job_id[:8]}", daemon=True).start()
        return job_id


def analyse_upload(
    analyzer: VideoAnalyzer,
    decoder: IsolatedDecoder,
    model_name: str,
    upload: Upload,
    thumbnails: bool = False,
    progress: Any = None,
    explain: bool = False,
) -> Tuple[int, dict]:
    """(HTTP status, answer) for one file: its verdict, or the error that stopped it. Never raises for bad media.

    An image's declared resolution is checked from its header, before it is decoded. With `explain`, each
    face carries its crop box and the map of where it looks manipulated (`VideoAnalyzer.analyse_frames`).
    """
    base = {
        "file_name": upload.file_name,
        "size_bytes": len(upload.data),
        "sha256": hashlib.sha256(upload.data).hexdigest(),
    }
    media_type = "unknown"
    try:
        kind, media_format = classify(upload.data)
        media_type = f"{kind}/{media_format}"
        if kind == KIND_IMAGE:
            check_declared_pixels(upload.data, media_format, analyzer.ingest_config.max_pixels)
        report = progress or (lambda stage, fraction: None)
        report("decoding", 0.0)
        started = time.perf_counter()
        decoded = decoder.decode(upload.data, kind, media_format, analyzer.ingest_config)
        verdict = analyzer.analyse_frames(decoded.frames, time.perf_counter() - started, thumbnails, report, explain)
    except MediaError as e:
        error = {"kind": e.kind, "message": public_message(e.message), **({"limit": e.limit} if e.limit else {})}
        return e.status, {**base, "media_type": media_type, "status": e.status, "error": error}
    except ServingError as e:
        error = {"kind": "model_server", "message": public_message(f"the model server failed: {e}")}
        return 503, {**base, "media_type": media_type, "status": 503, "error": error}
    answer = {**base, "media_type": media_type, "model_name": model_name, **verdict.to_dict()}
    answer.update(width=decoded.width, height=decoded.height)
    return 200, answer


def combined_status(statuses: List[int]) -> int:
    """One file: its own status. Several: 200 when all succeeded, their shared code when all failed alike, else 207."""
    if len(set(statuses)) == 1:
        return statuses[0]
    return 207


def create_app(service: DetectionService) -> FastAPI:
    app = FastAPI(title="Deepfake detection", description=__doc__)
    if service.keys is not None:
        _require_keys(app, service.keys)
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    _add_analysis_routes(app, service)
    _add_status_routes(app, service)
    return app


def _require_keys(app: FastAPI, keys: KeyStore) -> None:
    """Every /v1/* request needs a valid key, checked before its body is read: else 401, the same answer for
    every kind of wrong key. The principal goes to the routes in `request.state.principal`."""
    from starlette.concurrency import run_in_threadpool

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/v1/"):
            principal = await run_in_threadpool(keys.verify, bearer_key(request.headers.get("authorization")))
            if principal is None:
                message = "a valid API key is needed: send it as 'Authorization: Bearer KEY'"
                challenge = {"WWW-Authenticate": 'Bearer realm="deepfake-detection"'}
                return _error_response("unauthorized", message, 401, headers=challenge)
            request.state.principal = principal
        return await call_next(request)


def _principal(request: Request) -> Optional[Principal]:
    """The caller's principal; None when the service runs without keys."""
    return getattr(request.state, "principal", None)


def _owner(request: Request) -> Optional[str]:
    """Whose rows the caller may read: its own, or everyone's (None) for an admin or without keys."""
    principal = _principal(request)
    return None if principal is None or principal.admin else principal.name


def _add_analysis_routes(app: FastAPI, service: DetectionService) -> None:
    """`POST /v1/detect` and `POST /v1/jobs`: upload limits, then admission (within the key's share), then the
    analysis."""

    def admission_key(request: Request) -> Optional[str]:
        principal = _principal(request)
        return principal.name if principal else None

    def refused(error: MediaError, key: Optional[str]) -> JSONResponse:
        service.metrics.errors.labels("busy_key" if error.status == 429 else error.kind).inc()
        headers = None
        if error.status == 408:  # a client too slow to send its body is dropped, not kept for another request
            headers = {"Connection": "close"}
        elif error.status in (429, 503):
            headers = {"Retry-After": str(service.admission.retry_after_s(key))}
        return _error_response(error.kind, error.message, error.status, error.limit, headers)

    async def admitted(request: Request, key: Optional[str]) -> Tuple[List[Upload], Place]:
        """The request's files, and the queue place it takes once they have all arrived; MediaError if not:
        429 when the key holds its share, 503 when the service is full."""
        uploads = await read_uploads(request, service.settings, service.bodies)
        place, refusal = service.admission.try_admit(key)
        if place is None:
            admission, wait = service.admission, service.admission.retry_after_s(key)
            if refusal == KEY_QUEUE_FULL:
                raise MediaError("busy", 429, f"this key holds its share of the queue: try again in {wait} s", refusal)
            message = (
                f"the service is full ({admission.in_flight} analyses running, {admission.queued} waiting): "
                f"try again in {wait} s"
            )
            raise MediaError("busy", 503, message, refusal)
        return uploads, place

    @app.post("/v1/detect")
    async def detect(request: Request, thumbnails: bool = False, explain: bool = False) -> JSONResponse:
        key = admission_key(request)
        try:
            uploads, place = await admitted(request, key)
        except MediaError as e:
            return refused(e, key)
        gone = threading.Event()
        watcher = asyncio.ensure_future(watch_disconnect(request, gone))
        abandoned = abandoned_check(request, gone, asyncio.get_running_loop())
        try:
            status, answer = await run_in_threadpool(
                service.admission.run,
                place,
                lambda: service.analyse_all(uploads, thumbnails, principal=key, abandoned=abandoned, explain=explain),
            )
        finally:
            watcher.cancel()
            place.give_back()
        return JSONResponse(answer, status_code=status)

    @app.post("/v1/jobs", status_code=202)
    async def create_job(request: Request, thumbnails: bool = True, explain: bool = False) -> JSONResponse:
        key = admission_key(request)
        try:
            uploads, place = await admitted(request, key)
        except MediaError as e:
            return refused(e, key)
        try:
            job_id = service.start_job(uploads, thumbnails, place, key, explain)
        except BaseException:
            place.give_back()
            raise
        return JSONResponse({"job_id": job_id, "status_url": f"/v1/jobs/{job_id}"}, status_code=202)


def _add_status_routes(app: FastAPI, service: DetectionService) -> None:
    """Jobs, history, health, readiness, metrics and the page."""
    settings = service.settings

    @app.get("/v1/jobs/{job_id}")
    def job(request: Request, job_id: str) -> JSONResponse:
        found = service.history.job(job_id, _owner(request))
        if found is None:
            return _error_response("not_found", f"no job {job_id}", 404)
        return JSONResponse(dict(found))

    @app.get("/v1/history")
    def history(request: Request, limit: int = 20, offset: int = 0) -> JSONResponse:
        if not 1 <= limit <= 500 or not 0 <= offset <= MAX_HISTORY_OFFSET:
            return _error_response("bad_request", f"limit must be 1-500 and offset 0-{MAX_HISTORY_OFFSET}", 400)
        items, total = service.history.page(limit, offset, _owner(request))
        return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})

    @app.get("/v1/model")
    def model() -> JSONResponse:
        try:
            return JSONResponse(service.model_info())
        except ServingError as e:
            return _error_response("model_server", f"the model server failed: {e}", 503)

    @app.get("/v1/model/card")
    def card() -> Response:
        try:
            page = service.card_html()
        except ServingError as e:
            return _error_response("model_server", f"the model server failed: {e}", 503)
        if page is None:
            return _error_response("not_found", "no model card here: start the service with --model-base-path", 404)
        return Response(page, media_type="text/html")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        full_for_s = service.admission.full_for_s()
        if full_for_s >= settings.unready_after_s:
            reason = f"every queue place has been taken for {full_for_s:.0f} s: the service admits nothing"
            return JSONResponse({"ready": False, "reason": reason}, status_code=503)
        try:
            states = [s.state for s in service.client.status().model_version_status]
        except ServingError as e:
            return JSONResponse({"ready": False, "reason": str(e)}, status_code=503)
        ready = ModelVersionStatus.AVAILABLE in states
        return JSONResponse({"ready": ready, "model_name": settings.model_name}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(
            prometheus_client.generate_latest(service.metrics.registry), media_type="text/plain; version=0.0.4"
        )

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def _error_response(
    kind: str, message: str, status: int, limit: Optional[str] = None, headers: Optional[dict] = None
) -> JSONResponse:
    """The service's error body: `{"error": {"kind", "message", "limit"}}`."""
    body = {"kind": kind, "message": message, **({"limit": limit} if limit else {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    defaults = ServiceSettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model-server", default=defaults.model_server, help="gRPC address of TF Serving")
    parser.add_argument(
        "--model-name", help="default: the model server's only model, or ensemble among several (else an error)"
    )
    parser.add_argument(
        "--model-config-file", help="without --model-name: choose from this models.config instead of asking the server"
    )
    parser.add_argument("--model-label", help="a version label such as stable or canary")
    parser.add_argument(
        "--history-url", default=defaults.history_url, help="history database: sqlite:///file or postgresql://..."
    )
    parser.add_argument(
        "--history-url-file", help="read the history URL from this file (a mounted Secret), not from the flag"
    )
    parser.add_argument(
        "--history-pool-size", type=int, default=defaults.history_pool_size, help="database connections kept open"
    )
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    parser.add_argument("--max-files", type=int, default=defaults.max_files)
    parser.add_argument("--max-duration-s", type=float, default=defaults.max_duration_s)
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels)
    parser.add_argument("--decode-timeout-s", type=float, default=defaults.decode_timeout_s)
    parser.add_argument("--max-in-flight", type=int, default=defaults.max_in_flight, help="analyses at once")
    parser.add_argument(
        "--max-queued", type=int, default=defaults.max_queued, help="requests waiting; more are answered 503"
    )
    parser.add_argument(
        "--max-in-flight-per-key", type=int, default=defaults.max_in_flight_per_key, help="with keys: analyses at once"
    )
    parser.add_argument(
        "--max-queued-per-key",
        type=int,
        default=defaults.max_queued_per_key,
        help="with keys: requests waiting per key; more are answered 429",
    )
    parser.add_argument(
        "--head-timeout-s",
        type=float,
        default=defaults.head_timeout_s,
        help="longest wait for a request's line and headers, on a new or kept-alive connection",
    )
    parser.add_argument(
        "--read-timeout-s", type=float, default=defaults.read_timeout_s, help="longest pause within a body (408)"
    )
    parser.add_argument(
        "--body-timeout-s", type=float, default=defaults.body_timeout_s, help="longest time for a whole body (408)"
    )
    parser.add_argument(
        "--unready-after-s",
        type=float,
        default=defaults.unready_after_s,
        help="/readyz answers 503 once every queue place has been taken this long",
    )
    parser.add_argument("--frames-per-video", type=int, default=defaults.frames_per_video)
    parser.add_argument("--rule", default=defaults.rule, choices=sorted(video_scores.RULES))
    parser.add_argument(
        "--threshold",
        type=float,
        help="override the model's fitted point: calibrated P(fake) from which a file is fake (with --real-threshold)",
    )
    parser.add_argument(
        "--real-threshold", type=float, help="override the model's fitted point: P(fake) under which a file is real"
    )
    parser.add_argument(
        "--model-base-path",
        help="the folder the model server serves (its <name>/<version>/ subfolders): where GET /v1/model reads "
        "each version's model card; without it /v1/model shows the operating point only",
    )
    parser.add_argument(
        "--auth",
        choices=["keys", "none"],
        help="keys: every /v1/* route needs an API key; none: anyone who reaches the port may use it "
        "(default: none on a loopback --host, keys on any other)",
    )
    parser.add_argument(
        "--allow-unauthenticated-remote",
        action="store_true",
        help="let --auth none listen beyond loopback (behind a proxy that authenticates)",
    )
    args = parser.parse_args(argv)
    try:
        args.auth = auth_mode(args.host, args.auth, args.allow_unauthenticated_remote)
    except ValueError as e:
        parser.error(str(e))
    return args


# glibc gives each thread that allocates at once its own malloc arena, up to 8 per core, and an arena keeps
# what its thread freed. The service's request, detector and ONNX Runtime threads each held their own: under
# 16 clients posting 720p clips its process tree peaked at 1796 MiB with glibc's default, 1394 MiB with 2.
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number for the arena limit (malloc.h)


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> None:
    """Caps glibc's malloc arenas for threads that allocate after this call; does nothing without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_ARENA_MAX, arenas)


def uvicorn_config(app: FastAPI, settings: ServiceSettings, host: str, port: int, log_level: str) -> Any:
    """uvicorn's settings for the service: its h11 protocol with the request head timeout."""
    import uvicorn

    from serving.http_guard import head_timeout_protocol

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=head_timeout_protocol(settings.head_timeout_s)
    )


def main(argv: Optional[List[str]] = None) -> int:
    import uvicorn

    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    names = {f.name for f in dataclasses.fields(ServiceSettings)}
    if args.history_url_file:
        with open(args.history_url_file) as url_file:
            args.history_url = url_file.read().strip()
    settings = ServiceSettings(**{k: v for k, v in vars(args).items() if k in names and v is not None})
    if settings.model_name is None:
        try:
            settings = dataclasses.replace(
                settings, model_name=served_model.resolve(settings.model_server, args.model_config_file)
            )
        except served_model.ModelChoiceError as e:
            raise SystemExit(f"No --model-name, and no model to choose: {e}") from e
        logging.info("Serving model %r, the one the model server has", settings.model_name)
    if settings.history_url.startswith("sqlite:///") and not settings.history_url.startswith("sqlite:////"):
        os.makedirs(os.path.dirname(os.path.abspath(settings.history_url[len("sqlite:///") :])) or ".", exist_ok=True)
    service = DetectionService(settings)
    service.decoder.warm_up()
    app = create_app(service)
    try:
        uvicorn.Server(uvicorn_config(app, settings, args.host, args.port, "info")).run()
    finally:
        service.decoder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
