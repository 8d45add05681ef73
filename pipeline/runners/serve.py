"""`pipeline_runner.py serve`: the model server on every pushed model, TF Serving when installed, else the local one."""

import argparse
import os
import sys
from typing import List

from pipeline.runners import OUTPUT_DIR, SERVING_MODELS_DIR


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve", help="serve the pushed models (TF Serving if installed, else the local server)"
    )
    parser.add_argument("--serving-dir", default=os.path.join(OUTPUT_DIR, SERVING_MODELS_DIR))
    parser.add_argument("--config-dir", default=os.path.join(OUTPUT_DIR, "serving_config"))
    parser.add_argument("--grpc-port", type=int, default=8500)
    parser.add_argument("--rest-port", type=int, default=8501)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address the local model server's ports listen on (0.0.0.0: every one)"
    )
    parser.add_argument("--pin", action="append", default=[], help="MODEL=VERSION: serve only this version (rollback)")
    parser.add_argument(
        "--canary", action="append", default=[], help="MODEL=VERSION: also serve as canary beside --pin"
    )
    parser.set_defaults(run=run)


def _versions_by_model(pairs: List[str], flag: str) -> dict:
    values = {}
    for pair in pairs:
        name, _, version = pair.partition("=")
        if not name or not version.isdigit():
            raise SystemExit(f"{flag} {pair!r}: expected MODEL=VERSION, e.g. meso4=1732000000")
        values[name] = int(version)
    return values


def run(args: argparse.Namespace) -> int:
    """Serves every model pushed under the serving directory: TF Serving when installed, else the local server."""
    from serving.model_server import launch, model_config

    serving_dir = os.path.abspath(args.serving_dir)
    names = model_config.discover_models(serving_dir)
    if not names:
        print(f"No pushed model under {serving_dir}: run `python pipeline_runner.py local` first.", file=sys.stderr)
        return 1
    pins = _versions_by_model(args.pin, "--pin")
    canaries = _versions_by_model(args.canary, "--canary")
    unknown = sorted((set(pins) | set(canaries)) - set(names))
    if unknown:
        print(f"--pin/--canary name unknown models {unknown}; pushed models are {names}", file=sys.stderr)
        return 1
    models = []
    for name in names:
        base_path = os.path.join(serving_dir, name)
        if name in pins:
            models.append(model_config.release(name, base_path, stable=pins[name], canary=canaries.get(name)))
        elif name in canaries:
            print(f"--canary {name} needs --pin {name}=STABLE_VERSION beside it", file=sys.stderr)
            return 1
        else:
            models.append(model_config.ServingModel(name, base_path))
    batching = model_config.BatchingSettings(num_batch_threads=os.cpu_count() or 1)
    paths = model_config.write_serving_configs(os.path.abspath(args.config_dir), models, batching)
    command = launch.model_server_command(
        paths[model_config.MODELS_CONFIG_FILE],
        args.grpc_port,
        args.rest_port,
        monitoring_config=paths[model_config.MONITORING_FILE],
        batching_parameters=paths[model_config.BATCHING_FILE],
        host=args.host,
    )
    print(f"Serving {names} from {serving_dir}: gRPC :{args.grpc_port}, REST :{args.rest_port}", flush=True)
    print(" ".join(command), flush=True)
    os.execvp(command[0], command)  # the server takes over this process, and its signals
    return 0
