"""The client verbs of `deepfake-pipeline`: `detect FILE...` and `keys ...`.

Against a running detection service (`--service URL`, default
http://127.0.0.1:8080), or fully local with `--local` (a SavedModel run in
this process: `--model-dir DIR`, or by default the latest version of the model
pushed under `--serving-dir`: the only one, or the ensemble among several). A
table by default, `--json` for machines, a progress bar for several files.
Verdicts come in three tiers (`fake`, `uncertain`, `real`; `no_face` and
`no_person` without a score) at the operating point the model version carries. The exit code is 0 when every
file was analysed, 1 when one was not, and with `--fail-on fake` (or
`uncertain`) 3 when a file got that verdict (`uncertain` also fails on
`fake`). A service that needs a key gets it from `--api-key` or
`DEEPFAKE_API_KEY`. With `--explain` every face also carries its crop box
and the map of where it looks manipulated (in `--json`), and the table says
where the most fake face looks most manipulated, in frame pixels.

`keys create NAME [--admin]`, `keys list` and `keys revoke NAME` manage the
service's API keys in its history database (`--history-url`, or
`DEEPFAKE_HISTORY_URL`); `create` prints the new key once, as its last line.
"""

import argparse
import os

from deepfake_detection import contract
from serving.client import detect, keys
from serving.client.detect import DEFAULT_SERVICE, DEFAULT_SERVING_DIR, FAILING_VERDICTS

RAW = argparse.RawDescriptionHelpFormatter


DETECT_HELP = "verdicts for videos and images, from a running detection service or --local"
KEYS_HELP = "create, list and revoke the detection service's API keys"


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """The client verbs of `deepfake-pipeline`: `detect` and `keys`."""
    add_detect_parser(commands)
    add_keys_parser(commands)


def add_detect_parser(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser("detect", help=DETECT_HELP, description=__doc__, formatter_class=RAW)
    command.add_argument("files", nargs="+")
    command.add_argument("--service", default=os.environ.get("DEEPFAKE_SERVICE", DEFAULT_SERVICE))
    command.add_argument("--local", action="store_true", help="analyse in this process, without a service")
    command.add_argument("--model-dir", help="with --local: the SavedModel to use (default: see --serving-dir)")
    command.add_argument(
        "--serving-dir",
        default=DEFAULT_SERVING_DIR,
        help="with --local and no --model-dir: the latest version of the only model pushed here, or of the ensemble",
    )
    add_runtime_argument(command)
    command.add_argument("--frames-per-video", type=int, default=32, help="with --local: frames sampled per video")
    command.add_argument("--rule", default="mean", help="with --local: mean, confident or confidence_weighted")
    command.add_argument(
        "--threshold",
        type=float,
        help="with --local: override the model's fitted point: P(fake) from which a file is fake "
        "(with --real-threshold); by default the model version's own point decides",
    )
    command.add_argument(
        "--real-threshold", type=float, help="with --local: override the model's point: P(fake) under which it is real"
    )
    command.add_argument(
        "--fail-on", choices=sorted(FAILING_VERDICTS), help="exit 3 when a file is fake (or uncertain or fake)"
    )
    command.add_argument("--json", action="store_true", help="JSON instead of a table")
    command.add_argument(
        "--explain",
        action="store_true",
        help="a map per face of where it looks manipulated (a backward pass more per face: see docs/explanations.md)",
    )
    command.add_argument("--no-progress", action="store_true")
    command.add_argument("--timeout-s", type=float, default=600.0)
    command.add_argument(
        "--api-key",
        default=os.environ.get("DEEPFAKE_API_KEY"),
        help="the service's API key (default: $DEEPFAKE_API_KEY; the variable keeps it out of the shell history)",
    )
    command.set_defaults(run=detect.detect)


def add_runtime_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--runtime",
        choices=contract.RUNTIMES,
        default=contract.RUNTIME_SAVEDMODEL,
        help="with --local: the SavedModel, or one of the version's edge exports (the `edge` extra runs those "
        "without TensorFlow; see docs/edge.md)",
    )


def add_keys_parser(commands: argparse._SubParsersAction) -> None:
    keys_command = commands.add_parser("keys", help=KEYS_HELP, description=KEYS_HELP)
    actions = keys_command.add_subparsers(dest="action", required=True)
    for action, text in (("create", "a new key, printed once"), ("list", "every key"), ("revoke", "a name's keys")):
        sub = actions.add_parser(action, help=text)
        if action != "list":
            sub.add_argument("name", help="the principal: who owns the checks and jobs made with the key")
        if action == "create":
            sub.add_argument("--admin", action="store_true", help="may read every principal's history and jobs")
        if action == "revoke":
            sub.add_argument("--key-id", help="only this key of the name (as `keys list` shows it), not all of them")
        sub.add_argument(
            "--history-url",
            default=os.environ.get("DEEPFAKE_HISTORY_URL"),
            help="the service's history database: sqlite:///file or postgresql://... (default: $DEEPFAKE_HISTORY_URL)",
        )
    keys_command.set_defaults(run=keys.keys)
