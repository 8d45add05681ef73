"""Flags that several commands share, named the same everywhere, and what they build."""

import argparse
from typing import List, Optional

from deepfake_detection import contract, defaults
from deepfake_detection.evaluation import video_scores


def add_ingest_flags(parser: argparse.ArgumentParser) -> None:
    from deepfake_detection.ingest.ingest_config import SAMPLING_MODES
    from deepfake_detection.ingest.readers import LAYOUT_AUTO, LAYOUTS

    parser.add_argument("--layout", default=LAYOUT_AUTO, choices=(LAYOUT_AUTO,) + LAYOUTS)
    parser.add_argument("--sampling", choices=SAMPLING_MODES, help="uniform (default) or per_second")
    parser.add_argument("--frames-per-video", type=int, help="frames spread over each video in uniform mode")
    parser.add_argument("--image-size", type=int, help="side of the square face crops, in pixels")
    parser.add_argument("--image-format", choices=("png", "jpeg"))
    parser.add_argument("--clip-length", type=int, help="faces per clip example")
    parser.add_argument("--detect-every", type=int, help="full face detection on every n-th sampled frame")
    parser.add_argument(
        "--detection-face-px", type=int, help="detection scale: smallest face at this many pixels (0: by width)"
    )
    parser.add_argument("--max-file-bytes", type=int)
    parser.add_argument("--max-duration-s", type=float)
    parser.add_argument("--max-pixels", type=int)
    parser.add_argument("--split-buckets", help="split shares, e.g. train:8,eval:1,test:1")


def add_span_pattern_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--span-pattern",
        default=defaults.SPAN_PATTERN,
        help="span folders of the data root as a TFX split pattern: {SPAN}, or {YYYY}-{MM}-{DD}, optionally with "
        "{VERSION}; the newest span is ingested, and a data root where none matches is one span ('' for none)",
    )


def add_span_flags(parser: argparse.ArgumentParser) -> None:
    """Continuous training's flags: the span folders of the data root, the window of spans, what drift does."""
    add_span_pattern_flag(parser)
    parser.add_argument(
        "--train-spans", type=int, default=defaults.TRAIN_SPANS, help="spans training and evaluation read"
    )
    parser.add_argument(
        "--on-drift",
        default=defaults.ON_DRIFT,
        choices=contract.ON_DRIFT_CHOICES,
        help="drift of the newest span from the previous one: warn (the summary says it) or block (stop)",
    )


def drift_config(path: Optional[str] = None):  # noqa: ANN201 - a DistributionValidatorConfig
    """The drift thresholds kept in schemas/ (a text DistributionValidatorConfig)."""
    from google.protobuf import text_format
    from tfx.proto import distribution_validator_pb2

    from schemas import DRIFT_CONFIG_PATH

    with open(path or DRIFT_CONFIG_PATH) as f:
        return text_format.Parse(f.read(), distribution_validator_pb2.DistributionValidatorConfig())


def ingest_config(args: argparse.Namespace):  # noqa: ANN201 - an IngestConfig, imported only when used
    from deepfake_detection.ingest.ingest_config import IngestConfig, parse_split_buckets

    names = (
        "sampling",
        "frames_per_video",
        "image_size",
        "image_format",
        "clip_length",
        "detect_every",
        "detection_face_px",
        "max_file_bytes",
        "max_duration_s",
        "max_pixels",
    )
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.split_buckets:
        values["split_buckets"] = parse_split_buckets(args.split_buckets)
    return IngestConfig(**values)


def add_blessing_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-auc", type=float, default=defaults.LOCAL_MIN_AUC, help="blessing: lowest test AUC")
    parser.add_argument(
        "--max-auc-drop", type=float, default=0.0, help="blessing: how far below the last blessed model's AUC"
    )
    parser.add_argument(
        "--min-unseen-auc",
        type=float,
        default=None,
        help="blessing: lowest video AUC on manipulation kinds the model never trained on "
        f"(local default {defaults.LOCAL_MIN_UNSEEN_AUC} when some are unseen; else no bound)",
    )
    parser.add_argument("--video-rule", default=video_scores.RULE_MEAN, choices=sorted(video_scores.RULES))


def ensemble_members(args: argparse.Namespace) -> List[str]:
    """--ensemble's backbones; when it is not given, every one of --backbones if there are two or more."""
    if args.ensemble is None:
        backbones = args.backbones.split(",")
        return backbones if len(backbones) >= 2 else []
    return [name for name in args.ensemble.split(",") if name]
