"""The service's routes, by job: analysis (`/v1/detect`, `/v1/jobs`), then status (jobs, history, model, health,
readiness, metrics and the page)."""

import asyncio
import os
import threading
from typing import Callable, List, Optional, Tuple

import prometheus_client
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from serving.client.tf_serving import ServingError
from serving.protocol.tf_serving_api import ModelVersionStatus
from serving.service import jobs
from serving.service.admission import KEY_QUEUE_FULL, Place, WorkCancelledError
from serving.service.analysis import DetectionService
from serving.service.auth import Principal
from serving.service.history import CANCELLING
from serving.service.media import (
    MediaError,
)
from serving.service.uploads import (
    Upload,
    abandoned_check,
    read_uploads,
    watch_disconnect,
)

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The largest OFFSET SQLite and PostgreSQL take (a signed 64-bit integer).
MAX_HISTORY_OFFSET = 2**63 - 1


def principal_of(request: Request) -> Optional[Principal]:
    """The caller's principal; None when the service runs without keys."""
    return getattr(request.state, "principal", None)


def owner_of(request: Request) -> Optional[str]:
    """Whose rows the caller may read: its own, or everyone's (None) for an admin or without keys."""
    principal = principal_of(request)
    return None if principal is None or principal.admin else principal.principal_id


def revoked_check(service: DetectionService, request: Request) -> Callable[[], bool]:
    """Whether the caller's key has been revoked since its request came in (never, without keys): the work it
    started stops then."""
    principal = principal_of(request)
    if principal is None or service.keys is None:
        return lambda: False
    return lambda: not service.keys.is_live(principal.key_id)


def add_analysis_routes(app: FastAPI, service: DetectionService) -> None:
    """`POST /v1/detect` and `POST /v1/jobs`: upload limits, then admission (within the key's share), then the
    analysis."""

    def admission_key(request: Request) -> Optional[str]:
        principal = principal_of(request)
        return principal.principal_id if principal else None

    def refused(error: MediaError, key: Optional[str]) -> JSONResponse:
        service.metrics.errors.labels("busy_key" if error.status == 429 else error.kind).inc()
        headers = None
        if error.status == 408:  # a client too slow to send its body is dropped, not kept for another request
            headers = {"Connection": "close"}
        elif error.status in (429, 503):
            headers = {"Retry-After": str(service.admission.retry_after_s(key))}
        return error_response(error.kind, error.message, error.status, error.limit, headers)

    async def admitted(request: Request, key: Optional[str]) -> Tuple[List[Upload], Place]:
        """The request's files, and the queue place it takes once they have all arrived; MediaError if not:
        429 when the key holds its share, 503 when the service is full."""
        uploads = await read_uploads(request, service.settings, service.bodies, key)
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
        revoked = revoked_check(service, request)
        client_gone = abandoned_check(request, gone, asyncio.get_running_loop())
        try:
            status, answer = await run_in_threadpool(
                service.admission.run,
                place,
                lambda: service.analyse_all(
                    uploads, thumbnails, principal=key, abandoned=lambda: client_gone() or revoked(), explain=explain
                ),
                cancelled=revoked,
            )
        except WorkCancelledError:
            return error_response("cancelled", "the key was revoked while the request waited", 401)
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
            principal = principal_of(request)
            key_id = principal.key_id if principal else None
            job_id = jobs.start_job(service, uploads, thumbnails, place, key, explain, key_id)
        except BaseException:
            place.give_back()
            raise
        return JSONResponse({"job_id": job_id, "status_url": f"/v1/jobs/{job_id}"}, status_code=202)


def add_status_routes(app: FastAPI, service: DetectionService) -> None:
    """Jobs, history, health, readiness, metrics and the page."""
    settings = service.settings

    @app.get("/v1/jobs/{job_id}")
    def job(request: Request, job_id: str) -> JSONResponse:
        found = service.history.job(job_id, owner_of(request))
        if found is None:
            return error_response("not_found", f"no job {job_id}", 404)
        return JSONResponse(service.thumbnails.put_back(job_id, dict(found)))

    @app.delete("/v1/jobs/{job_id}")
    def cancel_job(request: Request, job_id: str) -> JSONResponse:
        """Cancels one's own queued or running job (an admin, anyone's): 202 while it stops, 409 once it ended."""
        state = service.history.cancel_job(job_id, owner_of(request))
        if state is None:
            return error_response("not_found", f"no job {job_id}", 404)
        if state != CANCELLING:
            return error_response("conflict", f"job {job_id} has already ended ({state})", 409)
        return JSONResponse({"job_id": job_id, "state": state}, status_code=202)

    @app.get("/v1/history")
    def history(request: Request, limit: int = 20, offset: int = 0) -> JSONResponse:
        if not 1 <= limit <= 500 or not 0 <= offset <= MAX_HISTORY_OFFSET:
            return error_response("bad_request", f"limit must be 1-500 and offset 0-{MAX_HISTORY_OFFSET}", 400)
        items, total = service.history.page(limit, offset, owner_of(request))
        return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})

    @app.get("/v1/model")
    def model() -> JSONResponse:
        try:
            return JSONResponse(service.model_info())
        except ServingError as e:
            return error_response("model_server", f"the model server failed: {e}", 503)

    @app.get("/v1/model/card")
    def card() -> Response:
        try:
            page = service.card_html()
        except ServingError as e:
            return error_response("model_server", f"the model server failed: {e}", 503)
        if page is None:
            return error_response("not_found", "no model card here: start the service with --model-base-path", 404)
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

    if settings.metrics_port is None:  # else on a port of their own (`detection_service.serve`)

        @app.get("/metrics")
        def metrics() -> Response:
            return Response(
                prometheus_client.generate_latest(service.metrics.registry), media_type="text/plain; version=0.0.4"
            )

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(os.path.join(STATIC_DIR, "index.html"))

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


def error_response(
    kind: str, message: str, status: int, limit: Optional[str] = None, headers: Optional[dict] = None
) -> JSONResponse:
    """The service's error body: `{"error": {"kind", "message", "limit"}}`."""
    body = {"kind": kind, "message": message, **({"limit": limit} if limit else {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)
