"""`/v1/live`: a rolling verdict on frames a client sends as they are taken (a camera in the page, `live
--service` on the command line).

Framing: each frame is one binary message, the first 8 bytes its media time in seconds (a big-endian IEEE 754
double), the rest a JPEG or PNG image. The server answers a JSON text message per analysed window, in the shape
of `live --json` (`serving.service.live_window`), or `{"error": {"kind", "message", "limit"}}` for a frame it
refuses (the connection stays open, except for a frame over `max_frame_bytes`, closed with 1009).

Keys: with `--auth keys` the key comes as `Authorization: Bearer KEY`, or, from a browser (which cannot set
headers on a WebSocket), as the subprotocols `["bearer", KEY]` (`new WebSocket(url, ["bearer", key])`); the
server answers the `bearer` subprotocol. A missing or invalid key gets the socket accepted and closed at once
with 1008 (policy violation), before any frame is read. Without keys the site guard's rules apply to the
upgrade: an allowed `Host`, and an `Origin` (browsers always send one on a WebSocket) of the same host.

Each connection holds one admission place (its key's share) while it is open, refused with 1013 (try again
later) when the service or the key is full; the place is given back however the connection ends. Frames are
checked by content type and by the pixels their header declares (`max_pixels`) before `cv2.imdecode` decodes
them in this process: a live frame is a small JPEG several times a second, and the isolated decoder's process
round trip and temporary file would cost more than decoding it, while the header check already bounds what a
hostile frame can make the decoder allocate. Analysis runs on the thread pool with a per-connection analyzer
that detects each frame and scores each face once; frames that arrive while a window is analysed replace one
another, so only the newest waits and latency does not build up.
"""

import asyncio
import collections
import contextlib
import logging
import struct
import time
from typing import Any, Deque, Optional, Tuple

import cv2
import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from deepfake_detection.ingest.detector import FaceDetector
from deepfake_detection.ingest.sampling import SampledFrame
from serving.client.tf_serving import ServingError
from serving.service.analysis import DetectionService, model_server_message
from serving.service.auth import bearer_key
from serving.service.http_guard import site_refusal
from serving.service.live_window import remembering_analyzer, window_update
from serving.service.media import KIND_IMAGE, MediaError, check_declared_pixels, classify

LIVE_PATH = "/v1/live"
TIME_BYTES = 8
DEFAULT_WINDOW = 8
MAX_WINDOW = 32
# A live frame is a camera picture, not an upload: 8 MiB holds a 4K JPEG at high quality.
MAX_FRAME_BYTES = 8 * 1024 * 1024
BEARER_PROTOCOL = "bearer"
POLICY_VIOLATION, TOO_BIG, TRY_AGAIN_LATER = 1008, 1009, 1013


class FrameError(Exception):
    """A frame the route refuses: `kind`, `message` and the `limit` it broke, as the other routes' errors."""

    def __init__(self, kind: str, message: str, limit: Optional[str] = None):
        super().__init__(message)
        self.kind, self.message, self.limit = kind, message, limit

    def document(self) -> dict:
        return {"error": {"kind": self.kind, "message": self.message, "limit": self.limit}}


def parse_frame(message: bytes, max_pixels: int) -> Tuple[float, Any]:
    """(media time, BGR image) of one binary message (its size already checked); FrameError for what the route
    refuses."""
    if len(message) <= TIME_BYTES:
        raise FrameError("framing", "a frame is 8 bytes of media time (big-endian double) and then the image")
    (media_time,) = struct.unpack(">d", message[:TIME_BYTES])
    data = message[TIME_BYTES:]
    try:
        kind, media_format = classify(data)
        if kind != KIND_IMAGE or media_format not in ("jpeg", "png"):
            raise MediaError("media_type", 415, "a live frame is a JPEG or PNG image")
        check_declared_pixels(data, media_format, max_pixels)
    except MediaError as e:
        raise FrameError(e.kind, e.message, e.limit) from None
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameError("undecodable", f"the {media_format} frame does not decode")
    return media_time, image


def _offered_key(websocket: WebSocket) -> Tuple[str, Optional[str]]:
    """(the key, the subprotocol to answer): from `Authorization: Bearer`, or the subprotocols `bearer, KEY`."""
    protocols = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if len(protocols) == 2 and protocols[0] == BEARER_PROTOCOL:
        return protocols[1], BEARER_PROTOCOL
    return bearer_key(websocket.headers.get("authorization")), None


def add_live_route(app: FastAPI, service: DetectionService) -> None:
    hosts = frozenset(service.settings.allowed_hosts)

    @app.websocket(LIVE_PATH)
    async def live(websocket: WebSocket, window: int = DEFAULT_WINDOW) -> None:
        if service.keys is None and site_refusal(hosts, websocket.headers, changes_state=True):
            await websocket.close(POLICY_VIOLATION, "this host name or another site's page may not connect")
            return
        key, subprotocol = _offered_key(websocket)
        principal = await run_in_threadpool(service.keys.verify, key) if service.keys is not None else None
        await websocket.accept(subprotocol=subprotocol)
        if service.keys is not None and principal is None:
            await websocket.close(POLICY_VIOLATION, "a valid API key is needed (Authorization: Bearer, or bearer)")
            return
        place, refusal = service.admission.try_admit(principal.key_id if principal else None)
        if place is None:
            await websocket.close(TRY_AGAIN_LATER, f"the service is full ({refusal}): try again later")
            return
        try:
            await _serve(websocket, service, max(1, min(window, MAX_WINDOW)))
        finally:
            place.give_back()


async def _serve(websocket: WebSocket, service: DetectionService, window: int) -> None:
    """Receives frames and analyses the newest while the client is there; returns when it leaves."""
    detector = await run_in_threadpool(FaceDetector.from_config, service.analyzer.ingest_config)
    analyzer = remembering_analyzer(service.analyzer, detector)
    newest: list = []  # at most one (message, received at): the frame the next analysis takes
    arrived = asyncio.Event()
    analysing = asyncio.ensure_future(_analyse(websocket, service, analyzer, window, newest, arrived))
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is None:
                await websocket.send_json(FrameError("framing", "frames are binary messages").document())
                continue
            if len(data) > TIME_BYTES + MAX_FRAME_BYTES:
                error = FrameError("limit", f"a frame is over the limit of {MAX_FRAME_BYTES} bytes", "max_frame_bytes")
                await websocket.send_json(error.document())
                await websocket.close(TOO_BIG, "frame too large")
                return
            newest[:] = [(data, time.monotonic())]
            arrived.set()
    except WebSocketDisconnect:
        return
    finally:
        analysing.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await analysing


async def _analyse(
    websocket: WebSocket, service: DetectionService, analyzer: Any, window: int, newest: list, arrived: asyncio.Event
) -> None:
    frames: Deque[SampledFrame] = collections.deque(maxlen=window)
    index = 0
    while True:
        await arrived.wait()
        arrived.clear()
        (data, received_at), newest[:] = newest[0], []
        try:
            media_time, image = await run_in_threadpool(parse_frame, data, service.settings.max_pixels)
            frames.append(SampledFrame(index, media_time, image))
            index += 1
            update = await run_in_threadpool(window_update, analyzer, list(frames), received_at)
        except FrameError as e:
            update = e.document()
        except ServingError as e:
            update = FrameError("model_server", model_server_message(e)).document()
        except Exception:  # noqa: BLE001 - one window's failure is answered; the socket and service go on
            logging.exception("A live window could not be analysed")
            update = FrameError("analysis_failed", "this window could not be analysed").document()
        await websocket.send_json(update)
