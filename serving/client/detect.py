"""`deepfake-pipeline detect FILE...`: verdicts for videos and images, from a running detection service or a
SavedModel in this process (`--local`)."""

import argparse
import json
import os
import sys
import time
from typing import Callable, List, Optional, Tuple

import httpx

from deepfake_detection import contract

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


def local_video_analyzer(  # noqa: ANN201 - a VideoAnalyzer
    model_dir: str,
    settings_overrides: dict,
    runtime: str = contract.RUNTIME_SAVEDMODEL,
    detector=None,  # noqa: ANN001
):
    """The detection service's `VideoAnalyzer` on the model of `model_dir` run in this process on `runtime`
    (the SavedModel or one of the version's edge exports), with `detector` or a new one; raises ValueError on a
    bad setting or runtime."""
    from serving.client.runtimes import load_model
    from serving.service.settings import ServiceSettings
    from serving.service.video_analysis import VideoAnalyzer

    settings = ServiceSettings(**settings_overrides)
    return VideoAnalyzer(
        load_model(model_dir, runtime),
        settings.ingest_config(),
        settings.rule,
        settings.operating_point(),
        detector=detector,
        detectors=1,
    )


def local_analyser(
    model_dir: str, settings_overrides: dict, explain: bool = False, runtime: str = contract.RUNTIME_SAVEDMODEL
) -> Callable[[str], Tuple[int, dict]]:
    """Analyses each file in this process on `runtime`: the SavedModel or one of the version's edge exports."""
    from serving.service.analysis import analyse_upload
    from serving.service.media import IsolatedDecoder
    from serving.service.settings import ServiceSettings
    from serving.service.uploads import Upload

    analyzer = local_video_analyzer(model_dir, settings_overrides, runtime)
    decoder = IsolatedDecoder(ServiceSettings(**settings_overrides).decode_timeout_s)
    model_name = os.path.basename(os.path.dirname(os.path.abspath(model_dir)))

    def analyse(path: str) -> Tuple[int, dict]:
        with open(path, "rb") as f:
            upload = Upload(os.path.basename(path), f.read())
        return analyse_upload(analyzer, decoder, model_name, upload, explain=explain)

    return analyse


def pushed_model_dir(serving_dir: str) -> str:
    """The latest version of the model pushed under `serving_dir`: the only one, or the ensemble among several."""
    from serving.model_server import model_config
    from serving.service import served_model

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


def resolve_model_dir(model_dir: Optional[str], serving_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """(the version folder `--local` runs, None) or (None, why there is none)."""
    from serving.service.served_model import ModelChoiceError

    try:
        return model_dir or pushed_model_dir(serving_dir), None
    except ModelChoiceError as e:
        return None, f"--local without --model-dir: {e}"


def runtime_problem(runtime: str, local: bool, explain: bool = False) -> Optional[str]:
    """Why `--runtime` cannot be honoured with these flags, None when it can."""
    if runtime == contract.RUNTIME_SAVEDMODEL:
        return None
    if not local:
        return f"--runtime {runtime} needs --local: the service runs its own model"
    if explain:
        from serving.client.runtimes import EXPLAIN_NEEDS_SAVEDMODEL

        return EXPLAIN_NEEDS_SAVEDMODEL
    return None


def detect(args: argparse.Namespace) -> int:
    missing = [p for p in args.files if not os.path.isfile(p)]
    if missing:
        print(f"No such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    problem = runtime_problem(args.runtime, args.local, args.explain)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.local:
        model_dir, error = resolve_model_dir(args.model_dir, args.serving_dir)
        if error:
            print(error, file=sys.stderr)
            return 2
        overrides = {
            "frames_per_video": args.frames_per_video,
            "rule": args.rule,
            "threshold": args.threshold,
            "real_threshold": args.real_threshold,
        }
        try:
            analyse = local_analyser(model_dir, overrides, args.explain, args.runtime)
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
