"""TF Serving's REST API (port 8501) over the model registry.

    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]            model status
    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata   signatures
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict    row or columnar predict
    GET  <prometheus path>                                        when monitoring is on

Errors answer `{"error": "..."}`: 400 for a malformed request (any JSON it
cannot use, however deep or oddly typed), inputs that do not fit the
signature or the request limits (`limits.RequestLimits`), an unknown
signature or version label, 404 for an unknown model or version, 405 for a
method it does not serve, 408 for a body slower than the timeout, 413 for a
body over the limit.

Connections are served by a fixed pool of threads (TF Serving's
`--rest_api_num_threads`), each socket read under a timeout and each body
under a deadline (`--rest_api_timeout_in_ms`): idle or dripping clients
cost a pool thread for at most that long, never a thread of their own.
"""

import json
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Optional, Tuple

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving.model_server import monitoring, tensors
from serving.model_server.limits import RequestLimits
from serving.model_server.servables import LoadedVersion, ModelRegistry, NotFoundError, ServedModel, model_spec

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?$"
)
ALLOWED_METHODS = "GET, POST"
_BODY_CHUNK = 1 << 16


class RestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def _version_number(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    if not text.isdigit():
        raise RestError(HTTPStatus.BAD_REQUEST, f"Invalid version: {text!r} is not an integer")
    return int(text)


def status_json(model: ServedModel, version: Optional[int], label: Optional[str]) -> dict:
    response = model.status(version, label)
    return json_format.MessageToDict(response, preserving_proto_field_name=True, including_default_value_fields=True)


def metadata_json(version: LoadedVersion) -> dict:
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in version.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    return {
        "model_spec": json_format.MessageToDict(model_spec(version), preserving_proto_field_name=True),
        "metadata": {"signature_def": json_format.MessageToDict(signature_map, preserving_proto_field_name=True)},
    }


def predict_json(version: LoadedVersion, body: Any, limits: RequestLimits) -> dict:
    """A `:predict` answer; BadRequestError for any body it cannot use, found before the model runs."""
    signature_name = body.get("signature_name", "") if isinstance(body, dict) else ""
    if not isinstance(signature_name, str):
        raise tensors.BadRequestError(f'"signature_name" must be a string, not {type(signature_name).__name__}')
    signature = version.signature(signature_name)
    try:
        inputs, row_format = tensors.request_to_inputs(body, {k: spec.dtype for k, spec in signature.inputs.items()})
    except tensors.BadRequestError:
        raise
    except (RecursionError, TypeError, ValueError, OverflowError) as e:  # numpy's, on values of any shape or depth
        raise tensors.BadRequestError(f"Malformed request: {type(e).__name__}: {e}") from e
    limits.check(inputs)
    outputs = version.predict(signature_name, inputs)
    return tensors.outputs_to_response(outputs, row_format)


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RestError(HTTPStatus.BAD_REQUEST, f"JSON Parse error: {e}") from e
    except RecursionError as e:
        raise RestError(HTTPStatus.BAD_REQUEST, "JSON Parse error: nested too deeply") from e


class RestHandler(BaseHTTPRequestHandler):
    """One connection; the server's registry, limits, timeout and `monitoring_path` come from `self.server`."""

    protocol_version = "HTTP/1.1"
    server: "RestServer"

    def setup(self) -> None:
        self.timeout = self.server.timeout_s  # every read of the socket, by StreamRequestHandler.setup
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        logging.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        if self.server.monitoring_path and self.path == self.server.monitoring_path:
            self._send(HTTPStatus.OK, monitoring.exposition(), {}, "text/plain; version=0.0.4")
            return
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """Every error the standard library raises (a malformed request line, headers too long, a method
        with no `do_` handler) answers TF Serving's JSON `{"error": ...}`, not an HTML page; a method this
        server does not serve is 405 with `Allow`, not 501."""
        headers = {"Connection": "close"}
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"Method {self.command} is not served; use {ALLOWED_METHODS}"
            headers["Allow"] = ALLOWED_METHODS
        self.log_error("code %d, message %s", code, message)
        self.close_connection = True
        self._send(HTTPStatus(code), json.dumps({"error": message or HTTPStatus(code).phrase}).encode(), headers)

    def _answer(self, method: str) -> None:
        try:
            status, payload = self._route(method)
        except RestError as e:
            status, payload = e.status, {"error": str(e)}
        except NotFoundError as e:
            status, payload = HTTPStatus.NOT_FOUND, {"error": str(e)}
        except (tensors.BadRequestError, ValueError) as e:
            status, payload = HTTPStatus.BAD_REQUEST, {"error": str(e)}
        except Exception as e:  # noqa: BLE001 - any failure answers 500 and the server goes on
            logging.exception("REST request %s %s failed", method, self.path)
            status, payload = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"}
        self._send(status, json.dumps(payload).encode(), {"Connection": "close"} if self.close_connection else {})

    def _route(self, method: str) -> Tuple[HTTPStatus, dict]:
        # A POST's body is read whatever the answer, so that it is never left in the stream for the next request.
        raw = self._body() if method == "POST" else b""
        match = _ROUTE.match(self.path.split("?", 1)[0])
        if not match:
            raise RestError(HTTPStatus.NOT_FOUND, f"Malformed request: {method} {self.path}")
        tail = match["tail"] or ""
        model = self.server.registry.model(match["name"])
        version, label = _version_number(match["version"]), match["label"]
        if method == "GET" and tail == "":
            return HTTPStatus.OK, status_json(model, version, label)
        if method == "GET" and tail == "/metadata":
            return HTTPStatus.OK, metadata_json(model.resolve(version, label))
        if method == "POST" and tail == ":predict":
            body = _parse_json(raw)
            with monitoring.observed(model.name, "predict"):
                return HTTPStatus.OK, predict_json(model.resolve(version, label), body, self.server.limits)
        if method == "POST" and tail in (":classify", ":regress"):
            raise RestError(
                HTTPStatus.BAD_REQUEST,
                f"{tail[1:]} needs a classification or regression signature; this server's models answer :predict",
            )
        raise RestError(HTTPStatus.NOT_FOUND, f"Malformed request: {method} {self.path}")

    def _body(self) -> bytes:
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():
            self.close_connection = True
            raise RestError(HTTPStatus.BAD_REQUEST, f"Content-Length must be a number of bytes, not {declared!r}")
        length = int(declared)
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise RestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"Request body of {length} bytes is over the limit of {self.server.max_body_bytes} bytes",
            )
        return self._read_body(length)

    def _read_body(self, length: int) -> bytes:
        """`length` bytes of body within the server's timeout in all, so a client dripping a byte at a time
        cannot hold a pool thread longer than one that stalls; 408 (and the connection closed) past it."""
        deadline = time.monotonic() + self.server.timeout_s
        body = bytearray()
        try:
            while len(body) < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(_BODY_CHUNK, length - len(body)))
                if not chunk:
                    self.close_connection = True
                    raise RestError(HTTPStatus.BAD_REQUEST, f"The body ended after {len(body)} of {length} bytes")
                body.extend(chunk)
        except TimeoutError:
            self.close_connection = True
            message = f"The request body did not arrive within {self.server.timeout_s:g} s"
            raise RestError(HTTPStatus.REQUEST_TIMEOUT, message) from None
        self.connection.settimeout(self.server.timeout_s)
        return bytes(body)

    def _send(self, status: HTTPStatus, body: bytes, headers: dict, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class RestServer(HTTPServer):
    """The REST front end: `threads` pool threads serve connections, one each; while all are busy, new
    connections wait in the listen backlog instead of each getting a thread of its own."""

    request_queue_size = 128

    def __init__(
        self,
        address: Tuple[str, int],
        registry: ModelRegistry,
        max_body_bytes: int,
        monitoring_path: Optional[str],
        limits: Optional[RequestLimits] = None,
        threads: int = 16,
        timeout_s: float = 30.0,
    ):
        super().__init__(address, RestHandler)
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.monitoring_path = monitoring_path
        self.limits = limits or RequestLimits()
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="rest")
        self._free = threading.BoundedSemaphore(threads)
        self._closing = threading.Event()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hands the connection to a free pool thread, waiting for one (the accept loop waits with it)."""
        while not self._free.acquire(timeout=0.2):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        self._pool.submit(self._serve_connection, request, client_address)

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one connection's failure is logged; the server goes on
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._free.release()

    def shutdown(self) -> None:
        self._closing.set()
        super().shutdown()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False)
