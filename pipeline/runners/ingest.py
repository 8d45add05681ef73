"""`pipeline_runner.py ingest`: the VideoExampleGen transforms on the DirectRunner, without TFX or ML Metadata."""

import argparse
import os
import sys

from deepfake_detection import config
from pipeline.runners import flags
from pipeline.runners.beam import beam_args


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ingest", help="extract face examples from a video dataset")
    parser.add_argument("--data-root", "--input", required=True, help="dataset folder (layout auto-detected)")
    parser.add_argument("--output-dir", "--output", required=True, help="folder for Split-*/ TFRecords and the report")
    flags.add_ingest_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Standalone ingest: the VideoExampleGen transforms without TFX or ML Metadata."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.video_example_gen import transforms
    from deepfake_detection.ingest.readers import read_dataset

    ingest_config = flags.ingest_config(args)
    records = read_dataset(args.data_root, args.layout)
    print(f"Found {len(records)} files under {args.data_root}", file=sys.stderr, flush=True)
    if not records:
        print("Nothing to ingest.", file=sys.stderr)
        return 1
    options = PipelineOptions(beam_args("direct", args.direct_num_workers))
    with beam.Pipeline(options=options) as pipeline:
        outputs = pipeline | "IngestVideos" >> transforms.IngestVideos(records, ingest_config)
        _ = outputs[transforms.FACES_TAG] | "WriteFaces" >> transforms.WriteSplits(args.output_dir)
        clips_dir = os.path.join(args.output_dir, "clips")
        _ = outputs[transforms.CLIPS_TAG] | "WriteClips" >> transforms.WriteSplits(clips_dir)
        _ = outputs[transforms.REPORT_TAG] | "WriteReport" >> transforms.WriteReport(args.output_dir)
    report_path = os.path.join(args.output_dir, config.REPORT_FILE_NAME)
    print(f"Examples under {args.output_dir}/Split-*/, clips under {args.output_dir}/clips/, report {report_path}")
    print(transforms.summary_line(transforms.summarize_report(report_path)))
    return 0
