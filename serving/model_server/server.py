"""Command line of the local model server: a drop-in for `tensorflow_model_server`'s own.

    python -m serving.model_server --port=8500 --rest_api_port=8501 \\
        --model_name=meso4 --model_base_path=/models/meso4
    python -m serving.model_server --port=8500 --rest_api_port=8501 --model_config_file=models.config

It serves any TensorFlow SavedModel under TF Serving's base path layout, with
TF Serving's REST and gRPC protocols, so clients cannot tell the two apart.
It exists because the real binary ships only as a Docker image or an apt
repository; where that binary is installed, use it instead.

Both ports listen on `--host` (loopback unless told otherwise: the detection
service beside it is its client). A request is bounded by `--max_batch_size`
instances and `--max_decoded_image_bytes` of decoded pixels, its REST body by
`--max_body_bytes` and `--rest_api_timeout_in_ms`, and REST connections are
served by `--rest_api_num_threads` threads.
"""

import argparse
import logging
import os
import signal
import threading
from typing import List, Optional

from tensorflow_serving.config import model_server_config_pb2

from serving.model_server import model_config
from serving.model_server.grpc_service import make_grpc_server
from serving.model_server.limits import DEFAULT_MAX_DECODED_IMAGE_BYTES, RequestLimits
from serving.model_server.rest import RestServer
from serving.model_server.servables import ModelRegistry

# 64 MiB of JSON: 32 base64 images of over a megabyte each. JSON grows about tenfold once parsed.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_HOST = "127.0.0.1"
# TF Serving's default for --rest_api_num_threads: four per core.
DEFAULT_REST_THREADS = 4 * (os.cpu_count() or 1)
DEFAULT_REST_TIMEOUT_MS = 30_000


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: none)")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address both ports listen on (0.0.0.0: every one)")
    parser.add_argument("--grpc_bind_address", help="the gRPC port's address, when not --host")
    parser.add_argument("--rest_api_port", type=int, default=0, help="REST port (0: no REST API, as in TF Serving)")
    parser.add_argument("--rest_api_bind_address", help="the REST port's address, when not --host")
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", help="base path of a single model")
    parser.add_argument("--model_config_file", help="a ModelServerConfig text proto (models.config)")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    parser.add_argument("--monitoring_config_file", help="enables Prometheus metrics at its path")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="REST request limit")
    parser.add_argument(
        "--max_batch_size",
        type=int,
        default=RequestLimits.max_batch_size,
        help="most instances in one request, as TF Serving's batching max_batch_size (400 above)",
    )
    parser.add_argument(
        "--max_decoded_image_bytes",
        type=int,
        default=DEFAULT_MAX_DECODED_IMAGE_BYTES,
        help="most bytes a request's images may decode to, read from their headers (400 above)",
    )
    parser.add_argument(
        "--rest_api_num_threads", type=int, default=DEFAULT_REST_THREADS, help="threads serving REST connections"
    )
    parser.add_argument(
        "--rest_api_timeout_in_ms",
        type=int,
        default=DEFAULT_REST_TIMEOUT_MS,
        help="longest wait for a REST socket read, and for a whole request body (408)",
    )
    args = parser.parse_args(argv)
    if bool(args.model_base_path) == bool(args.model_config_file):
        parser.error("give exactly one of --model_base_path and --model_config_file")
    args.grpc_bind_address = args.grpc_bind_address or args.host
    args.rest_api_bind_address = args.rest_api_bind_address or args.host
    return args


def server_config(args: argparse.Namespace) -> model_server_config_pb2.ModelServerConfig:
    if args.model_config_file:
        return model_config.read_models_config(args.model_config_file)
    return model_config.model_server_config([model_config.ServingModel(args.model_name, args.model_base_path)])


class LocalModelServer:
    """The registry, its version poller, and the gRPC and REST front ends; `stop()` shuts all down."""

    def __init__(self, args: argparse.Namespace):
        monitoring_path = None
        if args.monitoring_config_file:
            with open(args.monitoring_config_file) as f:
                monitoring_path = model_config.prometheus_path(f.read())
        self.registry = ModelRegistry(server_config(args), args.file_system_poll_wait_seconds)
        limits = RequestLimits(args.max_batch_size, args.max_decoded_image_bytes)
        self.grpc = None
        if args.port:
            self.grpc = make_grpc_server(self.registry, f"{args.grpc_bind_address}:{args.port}", limits=limits)
        self.rest = None
        if args.rest_api_port:
            address = (args.rest_api_bind_address, args.rest_api_port)
            self.rest = RestServer(
                address,
                self.registry,
                args.max_body_bytes,
                monitoring_path,
                limits,
                args.rest_api_num_threads,
                args.rest_api_timeout_in_ms / 1000,
            )
        self._rest_thread: Optional[threading.Thread] = None

    def start(self) -> None:
        self.registry.start()
        if self.grpc:
            self.grpc.start()
        if self.rest:
            self._rest_thread = threading.Thread(target=self.rest.serve_forever, name="rest", daemon=True)
            self._rest_thread.start()

    def stop(self) -> None:
        if self.rest:
            self.rest.shutdown()
            self.rest.server_close()
        if self.grpc:
            self.grpc.stop(grace=2).wait()
        self.registry.stop()


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    server = LocalModelServer(args)
    server.start()
    logging.info(
        "Serving %s: gRPC on %s, REST on %s",
        server.registry.names(),
        f"{args.grpc_bind_address}:{args.port}" if args.port else "-",
        f"{args.rest_api_bind_address}:{args.rest_api_port}" if args.rest_api_port else "-",
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0
