"""`deepfake-pipeline feedback`: the user's word on a verdict, and the flagged uploads exported as a span.

    deepfake-pipeline feedback CHECK_ID --label fake [--note TEXT] [--service URL] [--api-key KEY]
    deepfake-pipeline feedback export --history-url URL --output DIR

The first sends feedback on one check (its `check_id`, from the answer) to a
running service. `export` reads the service's history database and writes
every flagged check whose upload the service kept (`--keep-media`) in the
pipeline's folders layout: `DIR/real/<sha256>.<ext>`, `DIR/fake/<sha256>.<ext>`,
and one line per check in `DIR/feedback.jsonl` (check, label, note, the
original verdict and probability, model and version, times). Each check is
exported once, so running it again adds only what was flagged since; the
folder is meant to be one span of the data root (`span-N/`), which the next
scheduled run reads like any other (docs/feedback.md).
"""

import argparse
import hashlib
import json
import os
import sys
from typing import Dict, Optional

import httpx

from serving.client.detect import DEFAULT_SERVICE

FEEDBACK_HELP = "feedback on a verdict (CHECK_ID --label real|fake), or export the flagged media as a span (export)"
EXPORT = "export"
FEEDBACK_FILE = "feedback.jsonl"
LABELS = ("real", "fake")


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `feedback` verb of `deepfake-pipeline`."""
    parser = commands.add_parser(
        "feedback", help=FEEDBACK_HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("check_id", metavar="CHECK_ID|export", help="the check's id from its answer, or `export`")
    parser.add_argument("--label", choices=LABELS, help="what the file truly is")
    parser.add_argument("--note", help="why, in a few words (at most 1024 characters)")
    parser.add_argument("--service", default=os.environ.get("DEEPFAKE_SERVICE", DEFAULT_SERVICE))
    parser.add_argument(
        "--api-key", default=os.environ.get("DEEPFAKE_API_KEY"), help="the service's API key ($DEEPFAKE_API_KEY)"
    )
    parser.add_argument("--timeout-s", type=float, default=30.0)
    parser.add_argument(
        "--history-url",
        default=os.environ.get("DEEPFAKE_HISTORY_URL"),
        help="export: the service's history database (default: $DEEPFAKE_HISTORY_URL)",
    )
    parser.add_argument("--output", help="export: the span folder to write (real/, fake/, feedback.jsonl)")
    parser.set_defaults(run=run, check=check_args)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.check_id == EXPORT:
        if not args.history_url or not args.output:
            parser.error("feedback export needs --history-url (or DEEPFAKE_HISTORY_URL) and --output")
    elif not args.label:
        parser.error("feedback CHECK_ID needs --label real or --label fake")


def run(args: argparse.Namespace) -> int:
    if args.check_id == EXPORT:
        return export(args.history_url, args.output)
    return send(args.service, args.check_id, args.label, args.note, args.api_key, args.timeout_s)


def send(service: str, check_id: str, label: str, note: Optional[str], api_key: Optional[str], timeout_s: float) -> int:
    """POSTs the feedback; 0 when the service recorded it, 1 when it refused (with its reason on stderr)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.post(
            f"{service.rstrip('/')}/v1/checks/{check_id}/feedback",
            json={"label": label, "note": note},
            headers=headers,
            timeout=timeout_s,
        )
    except httpx.TransportError as e:
        print(f"service unreachable: {e}", file=sys.stderr)
        return 1
    answer = response.json() if response.content else {}
    if response.status_code != 201:
        message = answer.get("error", {}).get("message", response.text[:200])
        print(f"Not recorded (HTTP {response.status_code}): {message}", file=sys.stderr)
        return 1
    kept = "its upload is kept for the next span" if answer["media_kept"] else "its upload was not kept"
    print(f"Recorded {check_id} as {answer['feedback']['label']} (the verdict was {answer['verdict']}); {kept}")
    return 0


def export(history_url: str, output: str) -> int:
    """Copies every flagged, kept, not yet exported upload into the span folder `output`; 0, or 1 when an upload
    could not be read or no longer matches its SHA-256 (it is left for the next export)."""
    from serving.service.history import History
    from serving.service.retention import read_media

    history = History(history_url)
    counts: Dict[str, int] = {label: 0 for label in LABELS}
    failed = 0
    try:
        for check in history.flagged_to_export():
            try:
                data = read_media(check["media_uri"])
            except OSError as e:
                print(f"{check['check_id']}: its kept upload cannot be read: {e}", file=sys.stderr)
                failed += 1
                continue
            if hashlib.sha256(data).hexdigest() != check["sha256"]:
                print(f"{check['check_id']}: its kept upload no longer matches its SHA-256", file=sys.stderr)
                failed += 1
                continue
            _write_example(output, check, data)
            history.mark_exported(check["check_id"])
            counts[check["feedback_label"]] += 1
    finally:
        history.close()
    print(
        f"Exported {sum(counts.values())} flagged check(s) to {output} (real: {counts['real']}, fake: {counts['fake']})"
    )
    return 1 if failed else 0


def _write_example(output: str, check: dict, data: bytes) -> None:
    """The upload as `<label>/<sha256>.<ext>` (through a temporary name and a rename) and its line in the
    span's `feedback.jsonl`."""
    label = check["feedback_label"]
    extension = check["media_type"].split("/")[-1]
    relative = os.path.join(label, f"{check['sha256']}.{extension}")
    path = os.path.join(output, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.partial")  # hidden from the ingest
    with open(staging, "wb") as f:
        f.write(data)
    os.replace(staging, path)
    line = {
        "check_id": check["check_id"],
        "file": relative,
        "sha256": check["sha256"],
        "label": label,
        "note": check["feedback_note"],
        "verdict": check["verdict"],
        "fake_probability": check["fake_probability"],
        "model_name": check["model_name"],
        "model_version": check["model_version"],
        "checked_at": _iso(check["checked_at"]),
        "feedback_at": _iso(check["feedback_at"]),
    }
    with open(os.path.join(output, FEEDBACK_FILE), "a") as f:
        f.write(json.dumps(line) + "\n")


def _iso(moment) -> str:  # noqa: ANN001 - a datetime, with or without its zone (SQLite drops it)
    return moment.isoformat() if moment.tzinfo else moment.isoformat() + "+00:00"
