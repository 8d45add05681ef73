"""The project's command line: `deepfake-pipeline detect FILE...`.

Against a running detection service (`--service URL`, default
http://127.0.0.1:8080), or fully local with `--local` (a SavedModel run in
this process: `--model-dir DIR`, or by default the latest version of the model
pushed under `--serving-dir`: the only one, or the ensemble among several). A table by default,
`--json` for machines, a progress bar for several files; the exit code is 0
only when every file was analysed.
"""

import argparse
import json
import os
import sys
import time
from typing import Callable, List, Optional, Tuple

import httpx

DEFAULT_SERVICE = "http://127.0.0.1:8080"
DEFAULT_SERVING_DIR = os.path.join("outputs", "serving_models")
MAX_ATTEMPTS = 5
MAX_RETRY_WAIT_S = 30.0


def remote_analyser(service: str, timeout_s: float) -> Callable[[str], Tuple[int, dict]]:
    """POSTs each file to the service's `/v1/detect`, streamed from disk.

    Connection failures are retried by the transport; a `503` with
    `Retry-After` (the service is full) is retried after the time it asks for,
    up to `MAX_ATTEMPTS` tries and `MAX_RETRY_WAIT_S` per wait.
    """
    client = httpx.Client(base_url=service, timeout=timeout_s, transport=httpx.HTTPTransport(retries=2))

    def analyse(path: str) -> Tuple[int, dict]:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with open(path, "rb") as f:
                files = {"files": (os.path.basename(path), f, "application/octet-stream")}
                response = client.post("/v1/detect", files=files)
            wait = retry_after(response)
            if wait is None or attempt == MAX_ATTEMPTS:
                break
            time.sleep(wait)
        answer = response.json() if response.content else {}
        if "results" in answer:
            return response.status_code, answer["results"][0]
        error = answer.get("error", {"message": f"HTTP {response.status_code}: {response.text[:200]}"})
        return response.status_code, {"file_name": os.path.basename(path), "error": error}

    return analyse


def retry_after(response: httpx.Response) -> Optional[float]:
    """Seconds to wait before trying again: a 503 with `Retry-After` in seconds, else None."""
    value = response.headers.get("Retry-After", "")
    if response.status_code != 503 or not value.strip().isdigit():
        return None
    return min(float(value), MAX_RETRY_WAIT_S)


def local_analyser(model_dir: str, settings_overrides: dict) -> Callable[[str], Tuple[int, dict]]:
    from serving.clients import InProcessModel
    from serving.detection_service import ServiceSettings, Upload, analyse_upload
    from serving.media import IsolatedDecoder
    from serving.video_client import VideoAnalyzer

    settings = ServiceSettings(**settings_overrides)
    analyzer = VideoAnalyzer(InProcessModel(model_dir), settings.ingest_config(), settings.rule, settings.threshold)
    decoder = IsolatedDecoder(settings.decode_timeout_s)
    model_name = os.path.basename(os.path.dirname(os.path.abspath(model_dir)))

    def analyse(path: str) -> Tuple[int, dict]:
        with open(path, "rb") as f:
            upload = Upload(os.path.basename(path), f.read())
        return analyse_upload(analyzer, decoder, model_name, upload)

    return analyse


def pushed_model_dir(serving_dir: str) -> str:
    """The latest version of the model pushed under `serving_dir`: the only one, or the ensemble among several."""
    from serving import model_config, served_model

    name = served_model.choose(model_config.discover_models(serving_dir), f"the serving folder {serving_dir}")
    return os.path.join(serving_dir, name, str(model_config.available_versions(os.path.join(serving_dir, name))[-1]))


def table(rows: List[Tuple[str, int, dict]]) -> str:
    lines = [f"{'file':<32} {'verdict':<10} {'P(fake)':>8} {'faces':>6} {'frames':>7} {'seconds':>8}  note"]
    for path, status, answer in rows:
        name = os.path.basename(path)[:32]
        if status != 200:
            lines.append(f"{name:<32} {'error':<10} {'-':>8} {'-':>6} {'-':>7} {'-':>8}  {answer['error']['message']}")
            continue
        probability = "-" if answer["fake_probability"] is None else f"{answer['fake_probability']:.3f}"
        lines.append(
            f"{name:<32} {answer['verdict']:<10} {probability:>8} {len(answer['faces']):>6} "
            f"{answer['frames_analysed']:>7} {answer['timings_s']['total']:>8.2f}"
        )
    return "\n".join(lines)


def detect(args: argparse.Namespace) -> int:
    missing = [p for p in args.files if not os.path.isfile(p)]
    if missing:
        print(f"No such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.local:
        from serving.served_model import ModelChoiceError

        try:
            model_dir = args.model_dir or pushed_model_dir(args.serving_dir)
        except ModelChoiceError as e:
            print(f"--local without --model-dir: {e}", file=sys.stderr)
            return 2
        overrides = {"frames_per_video": args.frames_per_video, "rule": args.rule, "threshold": args.threshold}
        analyse = local_analyser(model_dir, overrides)
    else:
        analyse = remote_analyser(args.service, args.timeout_s)
    files = args.files
    if len(files) > 1 and not args.no_progress:
        from tqdm import tqdm

        files = tqdm(files, unit="file", file=sys.stderr)
    rows = []
    for path in files:
        try:
            status, answer = analyse(path)
        except (httpx.TransportError, OSError) as e:
            status, answer = (
                503,
                {"file_name": os.path.basename(path), "error": {"message": f"service unreachable: {e}"}},
            )
        rows.append((path, status, answer))
    if args.json:
        print(json.dumps([{"path": p, "status": s, **a} for p, s, a in rows], indent=1))
    else:
        print(table(rows))
    return 0 if all(status == 200 for _, status, _ in rows) else 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="deepfake-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("detect", help="verdicts for videos and images")
    command.add_argument("files", nargs="+")
    command.add_argument("--service", default=os.environ.get("DEEPFAKE_SERVICE", DEFAULT_SERVICE))
    command.add_argument("--local", action="store_true", help="analyse in this process, without a service")
    command.add_argument("--model-dir", help="with --local: the SavedModel to use (default: see --serving-dir)")
    command.add_argument(
        "--serving-dir",
        default=DEFAULT_SERVING_DIR,
        help="with --local and no --model-dir: the latest version of the only model pushed here, or of the ensemble",
    )
    command.add_argument("--frames-per-video", type=int, default=32, help="with --local: frames sampled per video")
    command.add_argument("--rule", default="mean", help="with --local: mean, confident or confidence_weighted")
    command.add_argument("--threshold", type=float, default=0.5, help="with --local: P(fake) from which a file is fake")
    command.add_argument("--json", action="store_true", help="JSON instead of a table")
    command.add_argument("--no-progress", action="store_true")
    command.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    return detect(args)


if __name__ == "__main__":
    raise SystemExit(main())
