"""TF Serving's REST API (port 8501) over the model registry.

    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]            model status
    GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata   signatures
    POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict    row or columnar predict
    GET  <prometheus path>                                        when monitoring is on

Errors answer `{"error": "..."}`: 400 for a malformed request, inputs that
do not fit the signature, an unknown signature or version label, 404 for an
unknown model or version, 413 for a body over the limit.
"""

import json
import logging
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, Tuple

from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2

from serving import tensors
from serving.model_server import monitoring
from serving.model_server.servables import LoadedVersion, ModelRegistry, NotFoundError, ServedModel, model_spec

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<tail>/metadata|:predict|:classify|:regress)?$"
)


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


def predict_json(version: LoadedVersion, body: Any) -> dict:
    signature_name = body.get("signature_name", "") if isinstance(body, dict) else ""
    signature = version.signature(signature_name)
    inputs, row_format = tensors.request_to_inputs(body, {k: spec.dtype for k, spec in signature.inputs.items()})
    outputs = version.predict(signature_name, inputs)
    return tensors.outputs_to_response(outputs, row_format)


class RestHandler(BaseHTTPRequestHandler):
    """One request; the server's `registry`, `max_body_bytes` and `monitoring_path` come from `self.server`."""

    protocol_version = "HTTP/1.1"
    server: "RestServer"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - BaseHTTPRequestHandler's signature
        logging.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 - BaseHTTPRequestHandler's naming
        if self.server.monitoring_path and self.path == self.server.monitoring_path:
            self._send(HTTPStatus.OK, monitoring.exposition(), "text/plain; version=0.0.4")
            return
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

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
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _route(self, method: str) -> Tuple[HTTPStatus, dict]:
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
            body = self._json_body()
            with monitoring.observed(model.name, "predict"):
                return HTTPStatus.OK, predict_json(model.resolve(version, label), body)
        if method == "POST" and tail in (":classify", ":regress"):
            raise RestError(
                HTTPStatus.BAD_REQUEST,
                f"{tail[1:]} needs a classification or regression signature; this server's models answer :predict",
            )
        raise RestError(HTTPStatus.NOT_FOUND, f"Malformed request: {method} {self.path}")

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.server.max_body_bytes:
            self.close_connection = True
            raise RestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"Request body of {length} bytes is over the limit of {self.server.max_body_bytes} bytes",
            )
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RestError(HTTPStatus.BAD_REQUEST, f"JSON Parse error: {e}") from e

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class RestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: Tuple[str, int], registry: ModelRegistry, max_body_bytes: int, monitoring_path: Optional[str]
    ):
        super().__init__(address, RestHandler)
        self.registry = registry
        self.max_body_bytes = max_body_bytes
        self.monitoring_path = monitoring_path
