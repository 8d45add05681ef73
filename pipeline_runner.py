"""deepfake-pipeline: the project's one command line (`python pipeline_runner.py VERB` is the same program).

The pipeline:
    deepfake-pipeline local  [--data-root DIR] [--output-dir DIR]    # the whole pipeline, locally (the main job)
    deepfake-pipeline ingest --input DIR --output DIR [--layout L]   # faces only, no TFX
    deepfake-pipeline compile [--output FILE] [--image IMAGE]        # Kubeflow V2 pipeline JSON
    deepfake-pipeline submit  --endpoint URL [--param NAME=VALUE]    # one run on Kubeflow Pipelines
    deepfake-pipeline schedule --cron '0 3 * * 1' --endpoint URL     # scheduled retraining
Serving:
    deepfake-pipeline serve  [--serving-dir DIR] [--pin M=V]          # the model server (and service) on pushed models
    deepfake-pipeline service --model-server HOST:PORT               # the detection service alone
    deepfake-pipeline model-config --base-path P --models M --output DIR   # a deployment's model server files
    deepfake-pipeline history upgrade --url URL                      # the history database's migrations
    deepfake-pipeline detect FILE... [--local]                       # verdicts for videos and images
    deepfake-pipeline keys create|list|revoke                        # the service's API keys
    deepfake-pipeline feedback CHECK_ID --label fake | export --output DIR  # feedback on verdicts, as a span
    deepfake-pipeline drift --history-url URL --model-dir VERSION_DIR  # uploads against the training data (exit 4)

This file only dispatches: the pipeline's verbs are modules of `pipeline/runners/`, the serving verbs live beside
the program they drive (`serving/service/`, `serving/model_server/`, `serving/client/`). Each verb imports what it
needs only when it runs, so the serving image (no TensorFlow, TFX or Beam) runs its own verbs.
"""

import argparse
import sys
from typing import List, Optional

from pipeline.runners import ingest, kubeflow, local, serve
from serving.client import cli as client_cli
from serving.client import drift as client_drift
from serving.client import feedback as client_feedback
from serving.client import live
from serving.model_server import cli as model_server_cli
from serving.service import database
from serving.service import flags as service_flags


def build_parser() -> argparse.ArgumentParser:
    """Every verb, each with a one-line help: `deepfake-pipeline --help` is the map."""
    parser = argparse.ArgumentParser(
        prog="deepfake-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    local.add_parser(commands)
    ingest.add_parser(commands)
    kubeflow.add_parsers(commands)
    serve.add_parser(commands)
    service_flags.add_parser(commands)
    model_server_cli.add_parser(commands)
    database.add_parser(commands)
    client_cli.add_parsers(commands)
    client_feedback.add_parser(commands)
    client_drift.add_parser(commands)
    live.add_parser(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "check", None):
        args.check(parser, args)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
