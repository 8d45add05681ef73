"""Request bodies: multipart uploads read within time and memory limits, and clients that go away.

A body is read chunk by chunk within a pause limit and a total limit (408
past either) and within a budget shared by every body still arriving, with
a share per key (503 past either), so slow or abandoned uploads cost a
connection for a bounded time, never memory without end. Each chunk is
parsed as it arrives, off the event loop, with the file count and the
parts' headers bounded while parsing (`MultipartReader`); a request whose client has gone is noticed so that
its analysis is not done, or recorded, for nobody.
"""

import asyncio
import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import AsyncIterator, Callable, List, Optional, Tuple

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from serving.service.admission import BodyBudget
from serving.service.history import safe_file_name
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


class MultipartReader:
    """A multipart/form-data body parsed as it arrives, its limits enforced part by part.

    A part beyond `max_files`, a field other than `files`, or a part's headers
    past python-multipart's count and size limits stop the parse at once
    (MediaError), so a body of 200,000 tiny parts costs the parse of
    `max_files` of them, not of the whole body; `write` runs off the event loop.
    """

    def __init__(self, content_type: str, max_files: int):
        from python_multipart.multipart import MultipartParser

        if not content_type.startswith("multipart/form-data"):
            raise MediaError("bad_request", 400, "send the files as multipart/form-data (field 'files')")
        boundary = content_type.split("boundary=", 1)[-1].strip().strip('"') if "boundary=" in content_type else None
        if not boundary:
            raise MediaError("bad_request", 400, "multipart/form-data without a boundary")
        self.max_files = max_files
        self.uploads: List[Upload] = []
        self._headers: List[Tuple[bytes, bytes]] = []
        self._field, self._value = bytearray(), bytearray()
        self._data: Optional[bytearray] = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begins,
                "on_header_field": lambda data, start, end: self._field.extend(data[start:end]),
                "on_header_value": lambda data, start, end: self._value.extend(data[start:end]),
                "on_header_end": self._header_ends,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_ends,
            },
        )

    def write(self, chunk: bytes) -> None:
        """Parses the next chunk of the body; MediaError 400 when malformed, 413 past `max_files`."""
        from python_multipart.exceptions import MultipartParseError

        try:
            self._parser.write(chunk)
        except MultipartParseError as e:
            raise MediaError("bad_request", 400, f"malformed multipart body: {e}") from None

    def finish(self) -> List[Upload]:
        """The body's files once it has all arrived; MediaError 400 when it held none."""
        self._parser.finalize()
        if not self.uploads:
            raise MediaError("bad_request", 400, "no file in the request (multipart field 'files')")
        return self.uploads

    def _part_begins(self) -> None:
        self._headers = []

    def _header_ends(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        disposition = dict(self._headers).get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        field, file_name = options.get(b"name", b""), options.get(b"filename")
        if field != FILES_FIELD.encode() or file_name is None:
            name = repr(field.decode(errors="replace")[:64])
            raise MediaError("bad_request", 400, f"unexpected multipart field {name}: send files in the field 'files'")
        if len(self.uploads) >= self.max_files:
            message = f"more than {self.max_files} files is over the limit of {self.max_files}"
            raise MediaError("too_many_files", 413, message, "max_files")
        name = os.path.basename(file_name.decode(errors="replace").replace("\\", "/")) or "upload"
        self.uploads.append(Upload(safe_file_name(name), b""))
        self._data = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._data is not None:
            self._data.extend(data[start:end])

    def _part_ends(self) -> None:
        if self._data is not None:
            self.uploads[-1].data = bytes(self._data)
            self._data = None


async def read_uploads(
    request: Request, settings: ServiceSettings, bodies: BodyBudget, key: Optional[str] = None
) -> List[Upload]:
    """The files of a multipart request, parsed off the event loop as the body arrives: MediaError 413 past the
    body size or file count limits (as soon as they are passed), 408 for a body too slow to arrive, 503 while
    other bodies arriving hold the memory budget for bodies, or `key`'s share of it."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        await _drain(request, settings, 2 * settings.max_body_bytes)
        raise MediaError("body_size", 413, _over_body_limit(int(declared), settings), "max_body_bytes")
    reader = MultipartReader(request.headers.get("content-type", ""), settings.max_files)
    received = 0
    try:
        async for chunk in _body_chunks(request, settings):
            if not bodies.take(len(chunk), key):
                message = "the service is receiving too many uploads at once: try again shortly"
                raise MediaError("busy", 503, message, "max_body_bytes")
            received += len(chunk)
            if received > settings.max_body_bytes:
                raise MediaError("body_size", 413, _over_body_limit(received, settings), "max_body_bytes")
            await run_in_threadpool(reader.write, chunk)
        return await run_in_threadpool(reader.finish)
    finally:
        bodies.give_back(received, key)


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
