"""The detection service: upload a video or image, get a verdict.

    deepfake-pipeline service --model-server localhost:8500 --port 8080

Without `--model-name` it serves the model the model server has: the only one, or `ensemble` among several
(`serving/service/served_model.py`).

Routes:
    POST /v1/detect           multipart files (field `files`): one answer per file (`?explain=true`: with each
                              face's crop box and map of where it looks manipulated, docs/explanations.md)
    POST /v1/jobs             the same, in the background; GET /v1/jobs/<id> shows progress, then the answers;
                              DELETE /v1/jobs/<id> cancels one's own job
    GET  /v1/history          the checks so far, newest first (`limit`, `offset`), each with its feedback
    POST /v1/checks/<check_id>/feedback   {"label": "real"|"fake", "note": "..."}: the user's word on a verdict
    GET  /v1/model            the served model: versions, operating point, model card (JSON)
    GET  /v1/model/card       the served version's model card, as a page
    WS   /v1/live             frames as binary messages (8 bytes of media time, then a JPEG or PNG): a
                              rolling verdict per analysed window (serving/service/live_route.py)
    GET  /healthz, /readyz    process alive; model server reachable and the model AVAILABLE
    GET  /metrics             Prometheus: requests, latencies, verdicts, errors by kind (with keys: an admin
                              key; or on a port of its own, --metrics-port)
    GET  /                    the web page

With `--auth keys` every /v1/* route and the API docs need `Authorization: Bearer KEY` (keys
from `deepfake-pipeline keys create`): each check and job belongs to its key's
principal, and each key has its own share of the queue. The service refuses to
listen beyond loopback without keys unless told so (docs/serving-auth.md);
without keys it answers only the `Host` names it is allowed (loopback's,
`--host`'s, `--allowed-hosts`), against DNS rebinding, and refuses a request
that changes anything when a page of another site sent it (`Origin`).

Each file runs the pipeline's own sampling, face detection and crop, then the
model server in batches over gRPC (TF Serving or the local model server).
Limits answer 4xx naming the limit: the body size (413), the media type by
content (415), the duration and resolution and undecodable media (422), a
body that stalls or takes too long to arrive (408). An image's resolution is
read from its header before anything decodes it. A request takes its queue
place only once its whole body has arrived, and gives it back however it
ends (see `serving.service.admission`); a request whose client went away while it
waited is not analysed, and nothing is written to the history for it.
Decoding runs in an isolated process with a time limit, so a decoder crash or
hang costs one file, not the service. This module wires the app and runs
it; beside it, by job: the flags and settings (`flags`, `settings`), the
routes (`routes`), one upload's analysis and the object the routes share
(`analysis`), background jobs (`jobs`), admission (`admission`), API keys
(`auth`), the history (`history`), request bodies and clients that leave
(`uploads`), media decoding (`media`, `decode_worker`), metrics (`metrics`)
and the video analyser (`video_analysis`). Uploads stay in memory (and, while the
decoder reads them, in a RAM-backed temporary file); the history keeps the
file's name, type, size and SHA-256 and per-face statistics, never the media unless `--keep-media` asks
(`retention`, `feedback`: docs/feedback.md).
"""

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import datetime
import logging
import os
from typing import Any, AsyncIterator, Callable

import prometheus_client
import sqlalchemy
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from serving.service import retention, served_model
from serving.service.analysis import DetectionService
from serving.service.auth import KeyStore, bearer_key
from serving.service.feedback import add_feedback_routes
from serving.service.flags import settings_from_args
from serving.service.http_guard import SecurityHeaders, SiteGuard, head_timeout_protocol
from serving.service.live_route import add_live_route
from serving.service.metrics import RequestMetrics
from serving.service.routes import add_analysis_routes, add_status_routes, error_response
from serving.service.settings import ServiceSettings

# The longest wait between two sweeps of expired jobs.
JOB_SWEEP_S = 300.0


def create_app(service: DetectionService) -> FastAPI:
    app = FastAPI(title="Deepfake detection", description=__doc__, lifespan=_expiring_jobs(service))
    if service.keys is not None:
        _require_keys(app, service.keys)
    else:
        app.add_middleware(SiteGuard, hosts=service.settings.allowed_hosts)
    app.add_middleware(RequestMetrics, metrics=service.metrics)
    app.add_middleware(SecurityHeaders)  # the outermost: on every answer, refusals included
    add_analysis_routes(app, service)
    add_status_routes(app, service)
    add_feedback_routes(app, service)
    add_live_route(app, service)
    return app


def _expiring_jobs(service: DetectionService) -> Callable[[FastAPI], Any]:
    """The app's lifespan: while it serves, jobs past `jobs_kept_s` are forgotten every few minutes."""
    kept = datetime.timedelta(seconds=service.settings.jobs_kept_s)
    interval_s = min(JOB_SWEEP_S, service.settings.jobs_kept_s / 2)

    async def sweep() -> None:
        while True:
            try:
                await run_in_threadpool(service.history.expire_jobs, kept)
            except sqlalchemy.exc.SQLAlchemyError:
                logging.exception("Could not forget expired jobs; trying again in %g s", interval_s)
            await asyncio.sleep(interval_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sweeper = asyncio.ensure_future(sweep())
        try:
            yield
        finally:
            sweeper.cancel()

    return lifespan


# Beside /v1/*, what needs a key: the API's description (it maps every route and limit) and, for an admin key,
# the metrics (every user's counts). Health, readiness, the page and its files stay open.
KEYED_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/metrics")
ADMIN_PATHS = ("/metrics",)


def _require_keys(app: FastAPI, keys: KeyStore) -> None:
    """Every /v1/* request, and the docs and metrics, need a valid key, checked before a body is read: else
    401, the same answer for every kind of wrong key; the metrics need an admin's (403 for another). The
    principal goes to the routes in `request.state.principal`."""

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/v1/") or path in KEYED_PATHS:
            principal = await run_in_threadpool(keys.verify, bearer_key(request.headers.get("authorization")))
            if principal is None:
                message = "a valid API key is needed: send it as 'Authorization: Bearer KEY'"
                challenge = {"WWW-Authenticate": 'Bearer realm="deepfake-detection"'}
                return error_response("unauthorized", message, 401, headers=challenge)
            if path in ADMIN_PATHS and not principal.admin:
                return error_response("forbidden", "the metrics need an admin key (or --metrics-port)", 403)
            request.state.principal = principal
        return await call_next(request)


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

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, http=head_timeout_protocol(settings.head_timeout_s)
    )


def serve(args: argparse.Namespace) -> int:
    """`deepfake-pipeline service`: the service on the flags' settings, until it is stopped."""
    import uvicorn

    limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_from_args(args)
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
    if settings.metrics_port is not None:
        prometheus_client.start_http_server(settings.metrics_port, args.host, registry=service.metrics.registry)
    app = create_app(service)
    sweeper = retention.Sweeper(service.history).start() if service.media else None
    try:
        uvicorn.Server(uvicorn_config(app, settings, args.host, args.port, "info")).run()
    finally:
        if sweeper:
            sweeper.stop()
        service.close()
    return 0
