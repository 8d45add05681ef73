"""`deepfake-pipeline drift`: have the uploads drifted from what the served version was trained on?

    deepfake-pipeline drift --history-url URL --model-dir VERSION_DIR [--since 24h|7d|ISO-TIME]

Reads the per-face statistics the service recorded for each check since
`--since` (default: the last 24 hours) from its history database, summarises
them with TFDV, and compares them with the training statistics the pushed
version carries (`VERSION_DIR/assets.extra/training_statistics.pb`) through
TFDV's drift comparator: Jensen-Shannon divergence per feature, against the
thresholds of `deepfake_detection.evaluation.drift`. Prints each feature with its distance and threshold;
exits 0 when nothing drifted, 4 when a feature did, 2 when there is nothing to
compare (no statistics in the version, or no check in the period). The service
exports the same divergences over a rolling window as the Prometheus gauge
`detection_input_drift` (docs/drift.md).
"""

import argparse
import datetime
import os
import re
import sys
from typing import List, Optional, Tuple

DRIFT_HELP = "compare the uploads' statistics with the served version's training statistics (TFDV); exit 4 on drift"
EXIT_DRIFT = 4
EXIT_NOTHING_TO_COMPARE = 2
DEFAULT_SINCE = "24h"
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The `drift` verb of `deepfake-pipeline`."""
    parser = commands.add_parser(
        "drift", help=DRIFT_HELP, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--history-url",
        default=os.environ.get("DEEPFAKE_HISTORY_URL"),
        help="the service's history database (default: $DEEPFAKE_HISTORY_URL)",
    )
    parser.add_argument(
        "--model-dir", required=True, help="the pushed version's folder (<serving_dir>/<name>/<version>)"
    )
    parser.add_argument("--since", default=DEFAULT_SINCE, help="a duration back from now (90m, 24h, 7d) or an ISO time")
    parser.set_defaults(run=run, check=check_args)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.history_url:
        parser.error("drift needs --history-url (or DEEPFAKE_HISTORY_URL): the service's history database")
    try:
        args.since = since_time(args.since)
    except ValueError as e:
        parser.error(str(e))


def since_time(text: str, now: Optional[datetime.datetime] = None) -> datetime.datetime:
    """The moment `--since` names: `now` less a duration (`90m`, `24h`, `7d`), or an ISO time (UTC if no zone)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    duration = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if duration:
        return now - datetime.timedelta(**{_UNITS[duration.group(2)]: float(duration.group(1))})
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: give a duration such as 90m, 24h or 7d, or an ISO time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def run(args: argparse.Namespace) -> int:
    from deepfake_detection.evaluation import drift
    from serving.service.history import History

    training = os.path.join(args.model_dir, drift.STATISTICS_DIR, drift.TRAINING_STATISTICS_FILE)
    if not os.path.exists(training):
        print(f"{args.model_dir} carries no training statistics ({training}): push it again", file=sys.stderr)
        return EXIT_NOTHING_TO_COMPARE
    history = History(args.history_url)
    try:
        faces = history.input_stats(args.since)
    finally:
        history.close()
    if not faces:
        print(f"No analysed face since {args.since.isoformat()}: nothing to compare", file=sys.stderr)
        return EXIT_NOTHING_TO_COMPARE
    measured = compare(faces, training)
    print(f"{len(faces)} faces since {args.since.isoformat()} against {training}")
    print(f"{'feature':<18} {'distance':>9} {'threshold':>10}  drifted")
    for feature, distance, threshold in measured:
        print(f"{feature:<18} {distance:>9.4f} {threshold:>10.2f}  {'yes' if distance > threshold else 'no'}")
    return EXIT_DRIFT if any(distance > threshold for _, distance, threshold in measured) else 0


def compare(faces: List[dict], training_statistics: str) -> List[Tuple[str, float, float]]:
    """(feature, Jensen-Shannon divergence, threshold) for each drift feature, as TFDV measures it between the
    faces' statistics and the training statistics."""
    import pandas as pd
    import tensorflow_data_validation as tfdv

    from deepfake_detection.evaluation.drift import DRIFT_THRESHOLDS

    training = tfdv.load_stats_binary(training_statistics)
    current = tfdv.generate_statistics_from_dataframe(pd.DataFrame(faces))
    schema = tfdv.infer_schema(training)
    known = {".".join(feature.path.step) or feature.name for feature in training.datasets[0].features}
    for feature, threshold in DRIFT_THRESHOLDS.items():
        if feature in known:
            tfdv.get_feature(schema, feature).drift_comparator.jensen_shannon_divergence.threshold = threshold
    anomalies = tfdv.validate_statistics(current, schema, previous_statistics=training)
    return [
        (".".join(info.path.step), measurement.value, measurement.threshold)
        for info in anomalies.drift_skew_info
        for measurement in info.drift_measurements
    ]
