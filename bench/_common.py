"""What every bench shares: this checkout on the import path, free ports, and one shape for its results.

Each bench states its goal, prints its figures as a table, and writes them as
JSON (`--json FILE`, default `outputs/bench/<bench>.json`): the bench, its goal,
the date, the machine, its arguments and its figures, so that runs on different
days and machines can be compared without reading their logs. Method, goals and
the latest figures: docs/benchmarks.md.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from typing import Any, Mapping, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A bench measures the checkout it sits in, not a copy installed elsewhere (`python bench/x.py` puts only bench/
# on the path).
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
RESULTS_DIR = os.path.join(ROOT, "outputs", "bench")


def stop(processes: Sequence[subprocess.Popen], work: str) -> None:
    """Ends a bench's servers (newest first) and removes its working folder, however the bench ended."""
    for process in reversed(processes):
        process.terminate()
        process.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass(frozen=True)
class Bench:
    """One bench's name (its JSON file's) and its goal, stated before it runs and written beside its figures."""

    name: str
    goal: str

    def parser(self, description: str) -> argparse.ArgumentParser:
        """The bench's argument parser, with `--json` already on it."""
        parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument(
            "--json",
            default=os.path.join(RESULTS_DIR, f"{self.name}.json"),
            help="where the figures go, as JSON (default: outputs/bench/<bench>.json)",
        )
        return parser

    def parse_args(self, parser: argparse.ArgumentParser) -> argparse.Namespace:
        args = parser.parse_args()
        print(f"{self.name}: goal: {self.goal}", flush=True)
        return args

    def write(self, args: argparse.Namespace, figures: Mapping[str, Any]) -> str:
        """Writes the figures as JSON where `--json` says, and prints where; returns the path."""
        record = {
            "bench": self.name,
            "goal": self.goal,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
            "arguments": {k: v for k, v in vars(args).items() if k != "json"},
            "figures": figures,
        }
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
        print(f"{self.name}: figures written to {args.json}", flush=True)
        return args.json
