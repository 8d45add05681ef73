"""The detection service's flags (`deepfake-pipeline service --help`), and the settings they make."""

import argparse
import dataclasses
from typing import List, Optional

from deepfake_detection.evaluation import video_scores
from serving.service.settings import ServiceSettings, allowed_hosts, auth_mode

SERVICE_HELP = "the detection service: upload a video or image, get a verdict (web page, REST API, jobs, history)"


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `service` verb of `deepfake-pipeline`."""
    parser = commands.add_parser("service", help=SERVICE_HELP, description=SERVICE_HELP)
    add_arguments(parser)
    parser.set_defaults(run=_run, check=check_args)


def _run(args: argparse.Namespace) -> int:
    from serving.service.detection_service import serve

    return serve(args)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The service's flags alone, as the verb parses them (for tests and embedding)."""
    parser = argparse.ArgumentParser(description=SERVICE_HELP)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_args(parser, args)
    return args


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Settles `--auth` from `--host`: keys beyond loopback unless told otherwise (docs/serving-auth.md)."""
    try:
        args.auth = auth_mode(args.host, args.auth, args.allow_unauthenticated_remote)
    except ValueError as e:
        parser.error(str(e))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ServiceSettings()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model-server", default=defaults.model_server, help="gRPC address of TF Serving")
    parser.add_argument(
        "--model-name", help="default: the model server's only model, or ensemble among several (else an error)"
    )
    parser.add_argument(
        "--model-config-file", help="without --model-name: choose from this models.config instead of asking the server"
    )
    parser.add_argument("--model-label", help="a version label such as stable or canary")
    parser.add_argument(
        "--history-url", default=defaults.history_url, help="history database: sqlite:///file or postgresql://..."
    )
    parser.add_argument(
        "--history-url-file", help="read the history URL from this file (a mounted Secret), not from the flag"
    )
    parser.add_argument(
        "--history-pool-size", type=int, default=defaults.history_pool_size, help="database connections kept open"
    )
    parser.add_argument(
        "--history-spool-dir",
        help="where checks wait while the history database is unavailable "
        "(default: beside a SQLite history, else outputs/history_spool)",
    )
    parser.add_argument(
        "--history-spool-max-bytes",
        type=int,
        default=defaults.history_spool_max_bytes,
        help="the spool's bound; past it checks are dropped (and counted)",
    )
    parser.add_argument(
        "--job-lease-s",
        type=float,
        default=defaults.job_lease_s,
        help="a job whose replica has not renewed it for this long is taken over by another",
    )
    parser.add_argument(
        "--model-timeout-s",
        type=float,
        default=defaults.model_timeout_s,
        help="a model-server call's deadline, plus --model-timeout-per-image-s per face in its batch",
    )
    parser.add_argument("--model-timeout-per-image-s", type=float, default=defaults.model_timeout_per_image_s)
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes)
    parser.add_argument("--max-files", type=int, default=defaults.max_files)
    parser.add_argument("--max-duration-s", type=float, default=defaults.max_duration_s)
    parser.add_argument("--max-pixels", type=int, default=defaults.max_pixels)
    parser.add_argument("--decode-timeout-s", type=float, default=defaults.decode_timeout_s)
    parser.add_argument("--max-in-flight", type=int, default=defaults.max_in_flight, help="analyses at once")
    parser.add_argument(
        "--max-queued", type=int, default=defaults.max_queued, help="requests waiting; more are answered 503"
    )
    parser.add_argument(
        "--max-in-flight-per-key", type=int, default=defaults.max_in_flight_per_key, help="with keys: analyses at once"
    )
    parser.add_argument(
        "--max-queued-per-key",
        type=int,
        default=defaults.max_queued_per_key,
        help="with keys: requests waiting per key; more are answered 429",
    )
    parser.add_argument(
        "--head-timeout-s",
        type=float,
        default=defaults.head_timeout_s,
        help="longest wait for a request's line and headers, on a new or kept-alive connection",
    )
    parser.add_argument(
        "--read-timeout-s", type=float, default=defaults.read_timeout_s, help="longest pause within a body (408)"
    )
    parser.add_argument(
        "--body-timeout-s", type=float, default=defaults.body_timeout_s, help="longest time for a whole body (408)"
    )
    parser.add_argument(
        "--unready-after-s",
        type=float,
        default=defaults.unready_after_s,
        help="/readyz answers 503 once every queue place has been taken this long",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve /metrics on this port instead of the service's (with keys, /metrics there needs an admin key)",
    )
    parser.add_argument(
        "--jobs-kept-s",
        type=float,
        default=defaults.jobs_kept_s,
        help="jobs are forgotten this long after their last change",
    )
    parser.add_argument("--frames-per-video", type=int, default=defaults.frames_per_video)
    parser.add_argument("--rule", default=defaults.rule, choices=sorted(video_scores.RULES))
    parser.add_argument(
        "--threshold",
        type=float,
        help="override the model's fitted point: calibrated P(fake) from which a file is fake (with --real-threshold)",
    )
    parser.add_argument(
        "--real-threshold", type=float, help="override the model's fitted point: P(fake) under which a file is real"
    )
    parser.add_argument(
        "--model-base-path",
        help="the folder the model server serves (its <name>/<version>/ subfolders): where GET /v1/model reads "
        "each version's model card; without it /v1/model shows the operating point only",
    )
    parser.add_argument(
        "--auth",
        choices=["keys", "none"],
        help="keys: every /v1/* route needs an API key; none: anyone who reaches the port may use it "
        "(default: none on a loopback --host, keys on any other)",
    )
    parser.add_argument(
        "--keep-media",
        help="keep each upload in this local folder for --keep-media-hours, so that feedback can send it to the "
        "next span (default: no media is ever stored; docs/feedback.md)",
    )
    parser.add_argument(
        "--keep-media-hours",
        type=float,
        default=defaults.keep_media_hours,
        help="with --keep-media: hours an upload nobody flagged is kept; flagged ones stay until exported",
    )
    parser.add_argument(
        "--drift-window-s",
        type=float,
        default=defaults.drift_window_s,
        help="/metrics: the uploads of this many seconds compared with the served version's training data",
    )
    parser.add_argument(
        "--allowed-hosts",
        default="",
        help="without keys: more Host names to answer, comma-separated ('*' for any), beside loopback's and "
        "--host's; any other Host is refused (400), against DNS rebinding",
    )
    parser.add_argument(
        "--allow-unauthenticated-remote",
        action="store_true",
        help="let --auth none listen beyond loopback (behind a proxy that authenticates)",
    )


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    """The settings the flags name; the history URL read from `--history-url-file` when given."""
    names = {f.name for f in dataclasses.fields(ServiceSettings)}
    if args.history_url_file:
        with open(args.history_url_file) as url_file:
            args.history_url = url_file.read().strip()
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    values["allowed_hosts"] = allowed_hosts(args.host, args.allowed_hosts.split(","))
    return ServiceSettings(**values)
