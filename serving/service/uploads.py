"""Request bodies: multipart uploads read within time and memory limits, and clients that go away.

A body is read chunk by chunk within a pause limit and a total limit (408
past either) and within a budget shared by every body still arriving (503
past it), so slow or abandoned uploads cost a connection for a bounded time,
never memory without end; a request whose client has gone is noticed so that
its analysis is not done, or recorded, for nobody.
"""

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import Any, AsyncIterator, Callable, List

from fastapi import Request
from starlette.requests import ClientDisconnect

from serving.service.admission import BodyBudget
from serving.service.media import MediaError
from serving.service.settings import ServiceSettings

FILES_FIELD = "files"
# Not an HTTP status anyone receives: what the metrics count for a request whose client went away (nginx's code).
CLIENT_GONE = 499
# How often a waiting /v1/detect request checks that its client is still there.
_DISCONNECT_POLL_S = 0.25
# The longest an analysis thread waits for the event loop to say whether its client is still there.
_DISCONNECT_CHECK_S = 5.0


@dataclasses.dataclass
class Upload:
    file_name: str
    data: bytes


def parse_uploads(body: bytes, content_type: str) -> List[Upload]:
    """The files of a multipart/form-data body, parsed in memory; MediaError 400 when it is not one."""
    from python_multipart import FormParser

    others: List[str] = []
    if not content_type.startswith("multipart/form-data"):
        raise MediaError("bad_request", 400, "send the files as multipart/form-data (field 'files')")
    uploads: List[Upload] = []

    def on_field(field: Any) -> None:
        others.append((field.field_name or b"").decode(errors="replace"))

    def on_file(file: Any) -> None:
        if file.field_name != FILES_FIELD.encode():
            others.append((file.field_name or b"").decode(errors="replace"))
            return
        file.file_object.seek(0)
        name = (file.file_name or b"upload").decode(errors="replace")
        uploads.append(Upload(os.path.basename(name), file.file_object.read()))

    boundary = content_type.split("boundary=", 1)[-1].strip().strip('"') if "boundary=" in content_type else None
    if not boundary:
        raise MediaError("bad_request", 400, "multipart/form-data without a boundary")
    try:
        parser = FormParser(
            "multipart/form-data", on_field, on_file, boundary=boundary, config={"MAX_MEMORY_FILE_SIZE": float("inf")}
        )
        parser.write(body)
        parser.finalize()
    except Exception as e:  # noqa: BLE001 - python-multipart raises several kinds for malformed bodies
        raise MediaError("bad_request", 400, f"malformed multipart body: {e}") from e
    if others:
        names = ", ".join(repr(name[:64]) for name in others[:5])
        raise MediaError("bad_request", 400, f"unexpected multipart field {names}: send files in the field 'files'")
    if not uploads:
        raise MediaError("bad_request", 400, "no file in the request (multipart field 'files')")
    return uploads


async def read_uploads(request: Request, settings: ServiceSettings, bodies: BodyBudget) -> List[Upload]:
    """The files of a multipart request, refused (MediaError 413) past the body size or file count limits,
    408 for a body too slow to arrive, 503 while other bodies arriving hold the memory budget for bodies."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        await _drain(request, settings, 2 * settings.max_body_bytes)
        raise MediaError("body_size", 413, _over_body_limit(int(declared), settings), "max_body_bytes")
    body = bytearray()
    try:
        async for chunk in _body_chunks(request, settings):
            if not bodies.take(len(chunk)):
                message = "the service is receiving too many uploads at once: try again shortly"
                raise MediaError("busy", 503, message, "max_body_bytes")
            body.extend(chunk)
            if len(body) > settings.max_body_bytes:
                raise MediaError("body_size", 413, _over_body_limit(len(body), settings), "max_body_bytes")
    finally:
        bodies.give_back(len(body))
    uploads = parse_uploads(bytes(body), request.headers.get("content-type", ""))
    if len(uploads) > settings.max_files:
        raise MediaError(
            "too_many_files", 413, f"{len(uploads)} files is over the limit of {settings.max_files}", "max_files"
        )
    return uploads


async def _body_chunks(request: Request, settings: ServiceSettings) -> AsyncIterator[bytes]:
    """The request body's chunks, each within `read_timeout_s` of the one before and all within
    `body_timeout_s`: MediaError 408 past either, so a client that stalls or drips costs a connection for a
    bounded time. A client that goes away raises MediaError with the status the metrics count it under."""
    deadline = time.monotonic() + settings.body_timeout_s
    chunks = request.stream().__aiter__()
    while True:
        left = deadline - time.monotonic()
        try:
            chunk = await asyncio.wait_for(chunks.__anext__(), max(0.0, min(settings.read_timeout_s, left)))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            if left <= settings.read_timeout_s:
                message = f"the request body took longer than the limit of {settings.body_timeout_s:g} s to arrive"
                raise MediaError("body_timeout", 408, message, "body_timeout_s") from None
            message = f"no byte of the request body arrived for {settings.read_timeout_s:g} s"
            raise MediaError("body_timeout", 408, message, "read_timeout_s") from None
        except ClientDisconnect:
            raise MediaError("client_gone", CLIENT_GONE, "the client went away before its upload arrived") from None
        yield chunk


def abandoned_check(request: Request, gone: threading.Event, loop: asyncio.AbstractEventLoop) -> Callable[[], bool]:
    """Whether the client has gone, for the analysis thread: the watcher's word, else a fresh look on the event
    loop (which first takes in the connection's pending events), so a client that left moments ago, while the
    watcher slept or the loop was busy, is not analysed or recorded for nobody."""

    def abandoned() -> bool:
        if gone.is_set():
            return True
        try:
            return asyncio.run_coroutine_threadsafe(request.is_disconnected(), loop).result(_DISCONNECT_CHECK_S)
        except (TimeoutError, concurrent.futures.TimeoutError, RuntimeError):
            return False

    return abandoned


async def watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Sets `gone` once the client has gone away, so that its queued or running analysis stops being done
    (and recorded) for nobody."""
    while not await request.is_disconnected():
        await asyncio.sleep(_DISCONNECT_POLL_S)
    gone.set()


async def _drain(request: Request, settings: ServiceSettings, cap: int) -> None:
    """Reads and drops a refused body (up to `cap` bytes, within the body's time limits), so that a plain
    client that sends it whole before reading gets the 413 instead of a broken pipe; nothing of it is kept."""
    drained = 0
    async for chunk in _body_chunks(request, settings):
        drained += len(chunk)
        if drained > cap:
            break


def _over_body_limit(size: int, settings: ServiceSettings) -> str:
    return f"request body of {size} bytes is over the limit of {settings.max_body_bytes} bytes"
