"""The detection service: upload a video or image, get a verdict.

    python -m serving.detection_service --model-server localhost:8500 --port 8080

Without `--model-name` it serves the model the model server has: the only one, or `ensemble` among several
(`serving/served_model.py`).

Routes:
    POST /v1/detect           multipart files (field `files`): one answer per file
    POST /v1/jobs             the same, in the background; GET /v1/jobs/<id> shows progress, then the answers
    GET  /v1/history          the checks so far, newest first (`limit`, `offset`)
    GET  /healthz, /readyz    process alive; model server reachable and the model AVAILABLE
    GET  /metrics             Prometheus: requests, latencies, verdicts, errors by kind
    GET  /                    the web page

Each file runs the pipeline's own sampling, face detection and crop, then the
model server in batches over gRPC (TF Serving or the local model server).
Limits answer 4xx naming the limit: the body size (413), the media type by
content (415), the duration and resolution and undecodable media (422).
Decoding runs in an isolated process with a time limit, so a decoder crash or
hang costs one file, not the service. Uploads stay in memory (and, while the
decoder reads them, in a RAM-backed temporary file); the history keeps the
file's name, type, size and SHA-256, never the media.
"""

import argparse
import ctypes
import dataclasses
import hashlib
import logging
import os
import threading
import time
import uuid
from typing import Any, List, Optional, Tuple

import prometheus_client
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from tensorflow_serving.apis import get_model_status_pb2

from deepfake_detection.evaluation import video_scores
from deepfake_detection.ingest.ingest_config import IngestConfig
from serving import served_model
from serving.admission import Admission
from serving.clients import GrpcClient, ModelTarget, ServingError
from serving.history import Check, History
from serving.media import IsolatedDecoder, MediaError, classify
from serving.video_client import VideoAnalyzer

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
FILES_FIELD = "files"


@dataclasses.dataclass(frozen=True)
class ServiceSettings:
    model_server: str = "localhost:8500"
    model_name: Optional[str] = None  # None: the model the model server has (served_model.resolve)
    model_label: Optional[str] = None
    history_url: str = "sqlite:///outputs/detection_history.sqlite"
    history_pool_size: int = 5
    max_body_bytes: int = 200 * 1024 * 1024
    max_files: int = 20
    decode_timeout_s: float = 60.0
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    frames_per_video: int = 32
    rule: str = video_scores.RULE_MEAN
    threshold: float = 0.5
    batch_size: int = 32
    max_in_flight: int = 2
    max_queued: int = 8

    def ingest_config(self) -> IngestConfig:
        return IngestConfig(
            frames_per_video=self.frames_per_video,
            max_file_bytes=self.max_body_bytes,
            max_duration_s=self.max_duration_s,
            max_pixels=self.max_pixels,
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = prometheus_client.CollectorRegistry()
        self.requests = prometheus_client.Counter(
            "detection_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = prometheus_client.Histogram(
            "detection_request_seconds",
            "Request latency by route",
            ["route"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.verdicts = prometheus_client.Counter(
            "detection_verdicts", "Files analysed, by verdict", ["verdict"], registry=self.registry
        )
        self.errors = prometheus_client.Counter(
            "detection_errors", "Files refused or failed, by kind", ["kind"], registry=self.registry
        )

    def watch(self, admission: Admission) -> None:
        """Queue depth, analyses in flight and refusals, read from the admission control when scraped."""
        for name, text, read in (
            ("detection_queue_depth", "Admitted requests waiting for a slot", lambda: admission.queued),
            ("detection_in_flight", "Requests being analysed", lambda: admission.in_flight),
            ("detection_rejected", "Requests refused with 503 because the queue was full", lambda: admission.rejected),
        ):
            prometheus_client.Gauge(name, text, registry=self.registry).set_function(read)


@dataclasses.dataclass
class Upload:
    file_name: str
    data: bytes


def parse_uploads(body: bytes, content_type: str) -> List[Upload]:
    """The files of a multipart/form-data body, parsed in memory; MediaError 400 when it is not one."""
    from python_multipart import FormParser

    if not content_type.startswith("multipart/form-data"):
        raise MediaError("bad_request", 400, "send the files as multipart/form-data (field 'files')")
    uploads: List[Upload] = []

    def on_file(file: Any) -> None:
        file.file_object.seek(0)
        name = (file.file_name or b"upload").decode(errors="replace")
        uploads.append(Upload(os.path.basename(name), file.file_object.read()))

    boundary = content_type.split("boundary=", 1)[-1].strip().strip('"') if "boundary=" in content_type else None
    if not boundary:
        raise MediaError("bad_request", 400, "multipart/form-data without a boundary")
    try:
        parser = FormParser(
            "multipart/form-data", None, on_file, boundary=boundary, config={"MAX_MEMORY_FILE_SIZE": float("inf")}
        )
        parser.write(body)
        parser.finalize()
    except Exception as e:  # noqa: BLE001 - python-multipart raises several kinds for malformed bodies
        raise MediaError("bad_request", 400, f"malformed multipart body: {e}") from e
    if not uploads:
        raise MediaError("bad_request", 400, "no file in the request (multipart field 'files')")
    return uploads


class DetectionService:
    """Everything the routes share: the analyzer, the decoder, the history, metrics and background jobs."""

    def __init__(self, settings: ServiceSettings, model: Any = None, decoder: Optional[IsolatedDecoder] = None):
        self.settings = settings
        self.client = model or GrpcClient(
            settings.model_server, ModelTarget(settings.model_name, label=settings.model_label)
        )
        self.analyzer = VideoAnalyzer(
            self.client, settings.ingest_config(), settings.rule, settings.threshold, settings.batch_size
        )
        self.decoder = decoder or IsolatedDecoder(settings.decode_timeout_s)
        self.history = History(settings.history_url, settings.history_pool_size)
        self.metrics = Metrics()
        self.admission = Admission(settings.max_in_flight, settings.max_queued)
        self.metrics.watch(self.admission)

    def analyse(self, upload: Upload, thumbnails: bool, progress: Any = None) -> Tuple[int, dict]:
        """(HTTP status, answer) for one file; every outcome is counted and recorded in the history."""
        status, answer = analyse_upload(
            self.analyzer,
            self.decoder,
            self.settings.model_name,
            upload,
            thumbnails,
            progress,
        )
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
            )
        )
        return status, answer

    def analyse_all(self, uploads: List[Upload], thumbnails: bool, progress: Any = None) -> Tuple[int, dict]:
        results = []
        for index, upload in enumerate(uploads):

            def report(stage: str, fraction: float, index: int = index, name: str = upload.file_name) -> None:
                if progress:
                    progress(index, len(uploads), name, stage, fraction)

            status, answer = self.analyse(upload, thumbnails, report)
            results.append({"status": status, **answer})
        return combined_status([r["status"] for r in results]), {"results": results}

    def start_job(self, uploads: List[Upload], thumbnails: bool) -> str:
        """Runs an admitted request in the background: `queued` until a slot frees, then `running`.

        Every change of the job is written to the shared database, so any
        replica on it answers `GET /v1/jobs/<id>`.
        """
        job_id = uuid.uuid4().hex
        job = {"job_id": job_id, "state": "queued", "files": len(uploads), "file_index": 0, "stage": "queued"}
        self.history.save_job(job)

        def update(**changes: Any) -> None:
            job.update(changes)
            self.history.save_job(job)

        def progress(index: int, total: int, name: str, stage: str, fraction: float) -> None:
            update(file_index=index, file_name=name, stage=stage, progress=round((index + fraction) / total, 3))

        def run() -> None:
            try:
                status, answer = self.admission.run(
                    lambda: self.analyse_all(uploads, thumbnails, progress), lambda: update(state="running")
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
) -> Tuple[int, dict]:
    """(HTTP status, answer) for one file: its verdict, or the error that stopped it. Never raises for bad media."""
    base = {
        "file_name": upload.file_name,
        "size_bytes": len(upload.data),
        "sha256": hashlib.sha256(upload.data).hexdigest(),
    }
    media_type = "unknown"
    try:
        kind, media_format = classify(upload.data)
        media_type = f"{kind}/{media_format}"
        report = progress or (lambda stage, fraction: None)
        report("decoding", 0.0)
        started = time.perf_counter()
        decoded = decoder.decode(upload.data, kind, media_format, analyzer.ingest_config)
        verdict = analyzer.analyse_frames(decoded.frames, time.perf_counter() - started, thumbnails, report)
    except MediaError as e:
        error = {"kind": e.kind, "message": e.message, **({"limit": e.limit} if e.limit else {})}
        return e.status, {**base, "media_type": media_type, "status": e.status, "error": error}
    except ServingError as e:
        error = {"kind": "model_server", "message": f"the model server failed: {e}"}
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

    @app.middleware("http")
    async def observe(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        route = request.url.path if not request.url.path.startswith("/v1/jobs/") else "/v1/jobs/{id}"
        response = await call_next(request)
        service.metrics.requests.labels(route, str(response.status_code)).inc()
        service.metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    _add_analysis_routes(app, service)
    _add_status_routes(app, service)
    return app


def _add_analysis_routes(app: FastAPI, service: DetectionService) -> None:
    """`POST /v1/detect` and `POST /v1/jobs`: admission, upload limits, then the analysis."""

    async def admitted_uploads(request: Request) -> List[Upload]:
        """The request's files once it holds a place in the queue; MediaError (and the place given back) if not."""
        try:
            return await _read_uploads(request, service.settings)
        except MediaError:
            service.admission.leave()
            raise

    def refused(error: MediaError) -> JSONResponse:
        service.metrics.errors.labels(error.kind).inc()
        return _error_response(error.kind, error.message, error.status, error.limit)

    def busy() -> JSONResponse:
        admission, wait = service.admission, service.admission.retry_after_s()
        message = (
            f"the service is full ({admission.in_flight} analyses running, {admission.queued} waiting): "
            f"try again in {wait} s"
        )
        service.metrics.errors.labels("busy").inc()
        return _error_response("busy", message, 503, "max_queued", {"Retry-After": str(wait)})

    @app.post("/v1/detect")
    async def detect(request: Request, thumbnails: bool = False) -> JSONResponse:
        if not service.admission.admit():
            return busy()
        try:
            uploads = await admitted_uploads(request)
        except MediaError as e:
            return refused(e)
        from starlette.concurrency import run_in_threadpool

        status, answer = await run_in_threadpool(
            service.admission.run, lambda: service.analyse_all(uploads, thumbnails)
        )
        return JSONResponse(answer, status_code=status)

    @app.post("/v1/jobs", status_code=202)
    async def create_job(request: Request, thumbnails: bool = True) -> JSONResponse:
        if not service.admission.admit():
            return busy()
        try:
            uploads = await admitted_uploads(request)
        except MediaError as e:
            return refused(e)
        job_id = service.start_job(uploads, thumbnails)
        return JSONResponse({"job_id": job_id, "status_url": f"/v1/jobs/{job_id}"}, status_code=202)


def _add_status_routes(app: FastAPI, service: DetectionService) -> None:
    """Jobs, history, health, readiness, metrics and the page."""
    settings = service.settings

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str) -> JSONResponse:
        found = service.history.job(job_id)
        if found is None:
            return _error_response("not_found", f"no job {job_id}", 404)
        return JSONResponse(dict(found))

    @app.get("/v1/history")
    def history(limit: int = 20, offset: int = 0) -> JSONResponse:
        if not 1 <= limit <= 500 or offset < 0:
            return _error_response("bad_request", "limit must be 1-500 and offset >= 0", 400)
        items, total = service.history.page(limit, offset)
        return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        try:
            states = [s.state for s in service.client.status().model_version_status]
        except ServingError as e:
            return JSONResponse({"ready": False, "reason": str(e)}, status_code=503)
        ready = get_model_status_pb2.ModelVersionStatus.AVAILABLE in states
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


async def _read_uploads(request: Request, settings: ServiceSettings) -> List[Upload]:
    """The files of a multipart request, refused (MediaError 413) past the body size or file count limits."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        await _drain(request, 2 * settings.max_body_bytes)
        raise MediaError("body_size", 413, _over_body_limit(int(declared), settings), "max_body_bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > settings.max_body_bytes:
            raise MediaError("body_size", 413, _over_body_limit(len(body), settings), "max_body_bytes")
    uploads = parse_uploads(bytes(body), request.headers.get("content-type", ""))
    if len(uploads) > settings.max_files:
        raise MediaError(
            "too_many_files", 413, f"{len(uploads)} files is over the limit of {settings.max_files}", "max_files"
        )
    return uploads


def _error_response(
    kind: str, message: str, status: int, limit: Optional[str] = None, headers: Optional[dict] = None
) -> JSONResponse:
    """The service's error body: `{"error": {"kind", "message", "limit"}}`."""
    body = {"kind": kind, "message": message, **({"limit": limit} if limit else {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)


async def _drain(request: Request, cap: int) -> None:
    """Reads and drops a refused body (up to `cap` bytes), so that a plain client that sends it whole before
    reading gets the 413 instead of a broken pipe; nothing of it is kept."""
    drained = 0
    async for chunk in request.stream():
        drained += len(chunk)
        if drained > cap:
            break


def _over_body_limit(size: int, settings: ServiceSettings) -> str:
    return f"request body of {size} bytes is over the limit of {settings.max_body_bytes} bytes"


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
    parser.add_argument("--frames-per-video", type=int, default=defaults.frames_per_video)
    parser.add_argument("--rule", default=defaults.rule, choices=sorted(video_scores.RULES))
    parser.add_argument("--threshold", type=float, default=defaults.threshold)
    return parser.parse_args(argv)


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
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    finally:
        service.decoder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
