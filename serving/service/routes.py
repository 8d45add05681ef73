"""The service's routes, by job: analysis (`/v1/detect`, `/v1/jobs`), then status (jobs, history, model, health,
readiness, metrics and the page)."""

import asyncio
import logging
import os
import threading
from typing import Callable, List, Optional, Tuple

import prometheus_client
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from serving.client.tf_serving import ServingError
from serving.service.admission import KEY_QUEUE_FULL, Place, WorkCancelledError
from serving.service.analysis import DetectionService, model_server_message
from serving.service.auth import Principal
from serving.service.history import CANCELLING, HistoryUnavailableError
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
        headers = {"Retry-After": str(service.client.retry_after_s())} if status == 503 else None
        return JSONResponse(answer, status_code=status, headers=headers)

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
            job_id = await run_in_threadpool(service.jobs.start, uploads, thumbnails, place, key, explain, key_id)
        except HistoryUnavailableError:
            place.give_back()
            return history_unavailable(service)
        except BaseException:
            place.give_back()
            raise
        return JSONResponse({"job_id": job_id, "status_url": f"/v1/jobs/{job_id}"}, status_code=202)


def add_status_routes(app: FastAPI, service: DetectionService) -> None:
    """Jobs, history, health, readiness, metrics and the page."""
    settings = service.settings

    @app.get("/v1/jobs/{job_id}")
    def job(request: Request, job_id: str) -> JSONResponse:
        try:
            found = service.history.job(job_id, owner_of(request))
        except HistoryUnavailableError:
            return history_unavailable(service)
        if found is None:
            return error_response("not_found", f"no job {job_id}", 404)
        return JSONResponse(service.thumbnails.put_back(job_id, dict(found)))

    @app.delete("/v1/jobs/{job_id}")
    def cancel_job(request: Request, job_id: str) -> JSONResponse:
        """Cancels one's own queued or running job (an admin, anyone's): 202 while it stops, 409 once it ended."""
        try:
            state = service.history.cancel_job(job_id, owner_of(request))
        except HistoryUnavailableError:
            return history_unavailable(service)
        if state is None:
            return error_response("not_found", f"no job {job_id}", 404)
        if state != CANCELLING:
            return error_response("conflict", f"job {job_id} has already ended ({state})", 409)
        return JSONResponse({"job_id": job_id, "state": state}, status_code=202)

    @app.get("/v1/history")
    def history(request: Request, limit: int = 20, offset: int = 0) -> JSONResponse:
        if not 1 <= limit <= 500 or not 0 <= offset <= MAX_HISTORY_OFFSET:
            return error_response("bad_request", f"limit must be 1-500 and offset 0-{MAX_HISTORY_OFFSET}", 400)
        try:
            items, total = service.history.page(limit, offset, owner_of(request))
        except HistoryUnavailableError:
            return history_unavailable(service)
        return JSONResponse({"items": items, "total": total, "limit": limit, "offset": offset})

    @app.get("/v1/model")
    def model() -> JSONResponse:
        try:
            return JSONResponse(service.model_info())
        except ServingError as e:
            return model_server_unavailable(service, e)

    @app.get("/v1/model/card")
    def card() -> Response:
        try:
            page = service.card_html()
        except ServingError as e:
            return model_server_unavailable(service, e)
        if page is None:
            return error_response("not_found", "no model card here: start the service with --model-base-path", 404)
        return Response(page, media_type="text/html")

    @app.get("/healthz")
    def healthz() -> dict:
        """Alive (always 200); `degraded` while the history database is unavailable (checks are spooled)."""
        history = service.recorder.health()
        return {"status": "ok" if history["state"] == "ok" else "degraded", "history": history}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready while verdicts can be given: the model server's last probe (cached, so this never waits for a
        model server that hangs) and a queue that admits; the history's state does not count (see /healthz)."""
        full_for_s = service.admission.full_for_s()
        if full_for_s >= settings.unready_after_s:
            reason = f"every queue place has been taken for {full_for_s:.0f} s: the service admits nothing"
            headers = {"Retry-After": str(service.admission.retry_after_s())}
            return JSONResponse({"ready": False, "reason": reason}, status_code=503, headers=headers)
        ready, reason = await run_in_threadpool(service.client.ready)
        if not ready:
            headers = {"Retry-After": str(service.client.retry_after_s())}
            return JSONResponse({"ready": False, "reason": reason}, status_code=503, headers=headers)
        return JSONResponse({"ready": True, "model_name": settings.model_name})

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


def history_unavailable(service: DetectionService) -> JSONResponse:
    """503 for the routes that need the history database while it is unavailable."""
    message = "the history database is unavailable: jobs and the history cannot be used now; POST /v1/detect works"
    headers = {"Retry-After": str(max(1, round(service.settings.history_retry_s)))}
    return error_response("history_unavailable", message, 503, headers=headers)


def model_server_unavailable(service: DetectionService, error: ServingError) -> JSONResponse:
    """503 for a route that needed the model server, naming the cause only (the details go to the log)."""
    logging.warning("The model server failed: %s", error)
    headers = {"Retry-After": str(service.client.retry_after_s())}
    return error_response("model_server", model_server_message(error), 503, headers=headers)


def error_response(
    kind: str, message: str, status: int, limit: Optional[str] = None, headers: Optional[dict] = None
) -> JSONResponse:
    """The service's error body: `{"error": {"kind", "message", "limit"}}`."""
    body = {"kind": kind, "message": message, **({"limit": limit} if limit else {})}
    return JSONResponse({"error": body}, status_code=status, headers=headers)
