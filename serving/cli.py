"""The project's command line: `deepfake-pipeline detect FILE...` and `deepfake-pipeline keys ...`.

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


def remote_analyser(
    service: str, timeout_s: float, api_key: Optional[str] = None, explain: bool = False
) -> Callable[[str], Tuple[int, dict]]:
    """POSTs each file to the service's `/v1/detect` (`?explain=true` with `explain`), streamed from disk, with
    `api_key` as a bearer token.

    Connection failures are retried by the transport; a `503` or `429` with
    `Retry-After` (the service, or this key's share of it, is full) is retried
    after the time it asks for, up to `MAX_ATTEMPTS` tries and
    `MAX_RETRY_WAIT_S` per wait.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    client = httpx.Client(
        base_url=service, timeout=timeout_s, headers=headers, transport=httpx.HTTPTransport(retries=2)
    )

    def analyse(path: str) -> Tuple[int, dict]:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            with open(path, "rb") as f:
                files = {"files": (os.path.basename(path), f, "application/octet-stream")}
                response = client.post("/v1/detect", files=files, params={"explain": "true"} if explain else None)
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
    """Seconds to wait before trying again: a 503 or 429 with `Retry-After` in seconds, else None."""
    value = response.headers.get("Retry-After", "")
    if response.status_code not in (429, 503) or not value.strip().isdigit():
        return None
    return min(float(value), MAX_RETRY_WAIT_S)


def local_analyser(
    model_dir: str, settings_overrides: dict, explain: bool = False
) -> Callable[[str], Tuple[int, dict]]:
    from serving.detection_service import ServiceSettings, Upload, analyse_upload
    from serving.local_model import InProcessModel
    from serving.media import IsolatedDecoder
    from serving.video_analysis import VideoAnalyzer

    settings = ServiceSettings(**settings_overrides)
    analyzer = VideoAnalyzer(
        InProcessModel(model_dir), settings.ingest_config(), settings.rule, settings.operating_point()
    )
    decoder = IsolatedDecoder(settings.decode_timeout_s)
    model_name = os.path.basename(os.path.dirname(os.path.abspath(model_dir)))

    def analyse(path: str) -> Tuple[int, dict]:
        with open(path, "rb") as f:
            upload = Upload(os.path.basename(path), f.read())
        return analyse_upload(analyzer, decoder, model_name, upload, explain=explain)

    return analyse


def pushed_model_dir(serving_dir: str) -> str:
    """The latest version of the model pushed under `serving_dir`: the only one, or the ensemble among several."""
    from serving import model_config, served_model

    name = served_model.choose(model_config.discover_models(serving_dir), f"the serving folder {serving_dir}")
    return os.path.join(serving_dir, name, str(model_config.available_versions(os.path.join(serving_dir, name))[-1]))


def most_manipulated(answer: dict) -> Optional[str]:
    """Where the most fake face of an explained answer looks most manipulated: its frame and the peak of its map
    in frame pixels (the centre of the peak cell of its crop box); None without maps."""
    faces = [face for face in answer.get("faces", []) if face.get("heatmap")]
    if not faces:
        return None
    face = max(faces, key=lambda f: f["fake_probability"])
    grid = face["heatmap"]
    row, col = max(((r, c) for r in range(len(grid)) for c in range(len(grid[r]))), key=lambda rc: grid[rc[0]][rc[1]])
    x, y, width, height = face["crop_box"]
    peak_x, peak_y = x + (col + 0.5) * width / len(grid[0]), y + (row + 0.5) * height / len(grid)
    return f"most manipulated: frame {face['frame_index']}, person {face['track_id']}, at x={peak_x:.0f} y={peak_y:.0f}"


def table(rows: List[Tuple[str, int, dict]]) -> str:
    """One line per file: verdict, calibrated P(fake), faces, frames, seconds, and why (or the error); for an
    explained file, a second line saying where it looks most manipulated."""
    lines = [f"{'file':<32} {'verdict':<10} {'P(fake)':>8} {'faces':>6} {'frames':>7} {'seconds':>8}  why"]
    for path, status, answer in rows:
        name = os.path.basename(path)[:32]
        if status != 200:
            lines.append(f"{name:<32} {'error':<10} {'-':>8} {'-':>6} {'-':>7} {'-':>8}  {answer['error']['message']}")
            continue
        probability = "-" if answer["fake_probability"] is None else f"{answer['fake_probability']:.3f}"
        lines.append(
            f"{name:<32} {answer['verdict']:<10} {probability:>8} {len(answer['faces']):>6} "
            f"{answer['frames_analysed']:>7} {answer['timings_s']['total']:>8.2f}  {answer.get('explanation', '')}"
        )
        where = most_manipulated(answer)
        if where:
            lines.append(f"{'':<32} {where}")
    return "\n".join(lines)


FAILING_VERDICTS = {"fake": {"fake"}, "uncertain": {"fake", "uncertain"}}
EXIT_VERDICT = 3


def exit_code(rows: List[Tuple[str, int, dict]], fail_on: Optional[str]) -> int:
    """1 when a file was not analysed; else 3 when a verdict is one `--fail-on` names; else 0."""
    if any(status != 200 for _, status, _ in rows):
        return 1
    failing = FAILING_VERDICTS.get(fail_on or "", set())
    return EXIT_VERDICT if any(answer.get("verdict") in failing for _, _, answer in rows) else 0


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
        overrides = {
            "frames_per_video": args.frames_per_video,
            "rule": args.rule,
            "threshold": args.threshold,
            "real_threshold": args.real_threshold,
        }
        try:
            analyse = local_analyser(model_dir, overrides, args.explain)
        except ValueError as e:
            print(str(e), file=sys.stderr)
            return 2
    else:
        analyse = remote_analyser(args.service, args.timeout_s, args.api_key, args.explain)
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
    return exit_code(rows, args.fail_on)


def keys(args: argparse.Namespace) -> int:
    """`keys create|list|revoke`: the store is opened (and migrated) here, so keys can be made before the
    service first starts on a new database."""
    from serving.auth import KeyStore

    if not args.history_url:
        print("keys needs --history-url (or DEEPFAKE_HISTORY_URL): the service's history database", file=sys.stderr)
        return 2
    store = KeyStore.open(args.history_url)
    try:
        if args.action == "create":
            try:
                key = store.create(args.name, args.admin)
            except ValueError as e:
                print(e, file=sys.stderr)
                return 2
            role = "an admin key" if args.admin else "a key"
            print(f"Created {role} for {args.name}. It is shown only this once; keep it secret:")
            print(key)
        elif args.action == "list":
            print(f"{'name':<24} {'key id':<16} {'admin':<5} {'created':<25} revoked")
            for info in store.list():
                revoked = info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "-"
                created = info.created_at.isoformat(timespec="seconds")
                print(f"{info.name:<24} {info.key_id:<16} {'yes' if info.admin else 'no':<5} {created:<25} {revoked}")
        else:
            revoked = store.revoke(args.name, args.key_id)
            if not revoked:
                print(f"{args.name} holds no live key", file=sys.stderr)
                return 1
            print(f"Revoked {revoked} key(s) of {args.name}")
    finally:
        store.close()
    return 0


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
    command.set_defaults(run=detect)

    keys_command = commands.add_parser("keys", help="create, list and revoke the detection service's API keys")
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
    keys_command.set_defaults(run=keys)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
