"""Command line of the local model server: a drop-in for `tensorflow_model_server`'s own.

    python -m serving.model_server --port=8500 --rest_api_port=8501 \\
        --model_name=meso4 --model_base_path=/models/meso4
    python -m serving.model_server --port=8500 --rest_api_port=8501 --model_config_file=models.config

It serves any TensorFlow SavedModel under TF Serving's base path layout, with
TF Serving's REST and gRPC protocols, so clients cannot tell the two apart.
It exists because the real binary ships only as a Docker image or an apt
repository; where that binary is installed, use it instead.
"""

import argparse
import logging
import signal
import threading
from typing import List, Optional

from tensorflow_serving.config import model_server_config_pb2

from serving import model_config
from serving.model_server.grpc_service import make_grpc_server
from serving.model_server.rest import RestServer
from serving.model_server.servables import ModelRegistry

DEFAULT_MAX_BODY_BYTES = 512 * 1024 * 1024


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (0: none)")
    parser.add_argument("--grpc_bind_address", default="0.0.0.0")
    parser.add_argument("--rest_api_port", type=int, default=0, help="REST port (0: no REST API, as in TF Serving)")
    parser.add_argument("--rest_api_bind_address", default="0.0.0.0")
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", help="base path of a single model")
    parser.add_argument("--model_config_file", help="a ModelServerConfig text proto (models.config)")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0)
    parser.add_argument("--monitoring_config_file", help="enables Prometheus metrics at its path")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES, help="REST request limit")
    args = parser.parse_args(argv)
    if bool(args.model_base_path) == bool(args.model_config_file):
        parser.error("give exactly one of --model_base_path and --model_config_file")
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
        self.grpc = make_grpc_server(self.registry, f"{args.grpc_bind_address}:{args.port}") if args.port else None
        self.rest = None
        if args.rest_api_port:
            address = (args.rest_api_bind_address, args.rest_api_port)
            self.rest = RestServer(address, self.registry, args.max_body_bytes, monitoring_path)
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
        args.port or "-",
        args.rest_api_port or "-",
    )
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0
