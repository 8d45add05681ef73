"""`pipeline_runner.py ingest`: the pipeline's per-video ingest over a folder, without TFX, Beam or TensorFlow."""

import argparse
import os
import sys

from deepfake_detection import contract
from pipeline.runners import flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ingest", help="extract face examples from a video dataset")
    parser.add_argument("--data-root", "--input", required=True, help="dataset folder (layout auto-detected)")
    parser.add_argument("--output-dir", "--output", required=True, help="folder for Split-*/ TFRecords and the report")
    flags.add_ingest_flags(parser)
    parser.add_argument("--workers", type=int, default=0, help="worker processes, one detector each (0: one per core)")
    parser.add_argument(
        "--video-timeout-s",
        type=float,
        default=contract.VIDEO_TIMEOUT_S,
        help="stop a video still running after this long (a hung decoder) and report it unreadable",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The standalone ingest (`deepfake_detection.ingest.standalone`): what VideoExampleGen runs per video, no Beam."""
    from deepfake_detection.ingest import report
    from deepfake_detection.ingest.readers import read_dataset
    from deepfake_detection.ingest.standalone import CLIPS_DIR, ingest_folder

    ingest_config = flags.ingest_config(args)
    records = read_dataset(args.data_root, args.layout)
    print(f"Found {len(records)} files under {args.data_root}", file=sys.stderr, flush=True)
    if not records:
        print("Nothing to ingest.", file=sys.stderr)
        return 1
    counts = ingest_folder(
        records,
        ingest_config,
        args.output_dir,
        args.workers,
        lambda line: print(line, file=sys.stderr, flush=True),
        video_timeout_s=args.video_timeout_s,
    )
    report_path = os.path.join(args.output_dir, contract.REPORT_FILE_NAME)
    clips = os.path.join(args.output_dir, CLIPS_DIR)
    print(f"Examples under {args.output_dir}/Split-*/, clips under {clips}/, report {report_path}")
    print(report.summary_line(counts))
    return 0
