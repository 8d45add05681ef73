"""The model server's verb of `deepfake-pipeline`: `model-config`, the files a deployment's model server reads.

Only the parser lives here; TensorFlow is imported when the verb runs, so every other verb starts without it."""

import argparse

MODEL_CONFIG_HELP = "write a model server's models.config, monitoring and batching files for a deployment"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `model-config` verb of `deepfake-pipeline`: the files for a deployment, e.g. an overlay of infra/k8s."""
    parser = commands.add_parser("model-config", help=MODEL_CONFIG_HELP, description=MODEL_CONFIG_HELP)
    parser.add_argument("--base-path", required=True, help="where the Pusher writes: <base>/<model>/<version>/")
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument("--output", required=True)
    parser.add_argument("--batch-timeout-micros", type=int, help="default: BatchingSettings' (0, for CPU)")
    parser.add_argument("--num-batch-threads", type=int, help="default: BatchingSettings'")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from serving.model_server.model_config import write_deployment_configs

    return write_deployment_configs(args)
