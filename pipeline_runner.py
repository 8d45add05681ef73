"""Runners of the deepfake detection pipeline: they bind paths, metadata and Beam args.

    python pipeline_runner.py local  [--data-root DIR] [--output-dir DIR]   # the whole pipeline, locally
    python pipeline_runner.py ingest --input DIR --output DIR [--layout L]  # faces only, no TFX
    python pipeline_runner.py serve  [--serving-dir DIR] [--pin M=V]         # serve the pushed models
    python pipeline_runner.py compile [--output FILE] [--image IMAGE]       # Kubeflow V2 pipeline JSON
    python pipeline_runner.py submit  --endpoint URL [--param NAME=VALUE]   # one run on Kubeflow Pipelines
    python pipeline_runner.py schedule --cron '0 3 * * 1' --endpoint URL    # scheduled retraining

This file only dispatches: each command is a module of `pipeline/runners/`,
and the graph itself is `pipeline.pipeline.create_pipeline`.
"""

import argparse
import sys
from typing import List, Optional

from pipeline.runners import ingest, kubeflow, local, serve


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    ingest.add_parser(commands)
    local.add_parser(commands)
    serve.add_parser(commands)
    kubeflow.add_parsers(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
