"""Runners of the deepfake detection pipeline: they bind paths, metadata and Beam args.

    python pipeline_runner.py local  [--data-root DIR] [--output-dir DIR]   # the whole pipeline, locally
    python pipeline_runner.py ingest --input DIR --output DIR [--layout L]  # faces only, no TFX

The graph itself lives in `pipeline.pipeline.create_pipeline`; nothing here
builds components.
"""

import argparse
import glob
import json
import os
import sys
from typing import List, Optional

from pipeline import config

DEFAULT_OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs")


def _add_ingest_flags(parser: argparse.ArgumentParser) -> None:
    from components.video_example_gen.ingest_config import SAMPLING_MODES
    from components.video_example_gen.readers import LAYOUT_AUTO, LAYOUTS

    parser.add_argument("--layout", default=LAYOUT_AUTO, choices=(LAYOUT_AUTO,) + LAYOUTS)
    parser.add_argument("--sampling", choices=SAMPLING_MODES, help="uniform (default) or per_second")
    parser.add_argument("--frames-per-video", type=int, help="frames spread over each video in uniform mode")
    parser.add_argument("--image-size", type=int, help="side of the square face crops, in pixels")
    parser.add_argument("--image-format", choices=("png", "jpeg"))
    parser.add_argument("--clip-length", type=int, help="faces per clip example")
    parser.add_argument("--max-file-bytes", type=int)
    parser.add_argument("--max-duration-s", type=float)
    parser.add_argument("--max-pixels", type=int)
    parser.add_argument("--split-buckets", help="split shares, e.g. train:8,eval:1,test:1")
    parser.add_argument(
        "--direct-num-workers", type=int, default=1, help="DirectRunner worker processes (0: one per core)"
    )


def _ingest_config(args: argparse.Namespace):
    from components.video_example_gen.ingest_config import IngestConfig, parse_split_buckets

    names = (
        "sampling",
        "frames_per_video",
        "image_size",
        "image_format",
        "clip_length",
        "max_file_bytes",
        "max_duration_s",
        "max_pixels",
    )
    values = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.split_buckets:
        values["split_buckets"] = parse_split_buckets(args.split_buckets)
    return IngestConfig(**values)


def beam_args(direct_num_workers: int) -> List[str]:
    """DirectRunner arguments: in one process by default, several processes when asked."""
    if direct_num_workers == 1:
        return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    return ["--direct_running_mode=multi_processing", f"--direct_num_workers={direct_num_workers}"]


def run_ingest(args: argparse.Namespace) -> int:
    """Standalone ingest: the VideoExampleGen transforms without TFX or ML Metadata."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.video_example_gen import transforms
    from components.video_example_gen.readers import read_dataset

    ingest_config = _ingest_config(args)
    records = read_dataset(args.input, args.layout)
    print(f"Found {len(records)} files under {args.input}", file=sys.stderr, flush=True)
    if not records:
        print("Nothing to ingest.", file=sys.stderr)
        return 1
    options = PipelineOptions(beam_args(args.direct_num_workers))
    with beam.Pipeline(options=options) as pipeline:
        outputs = pipeline | "IngestVideos" >> transforms.IngestVideos(records, ingest_config)
        _ = outputs[transforms.FACES_TAG] | "WriteFaces" >> transforms.WriteSplits(args.output)
        _ = outputs[transforms.CLIPS_TAG] | "WriteClips" >> transforms.WriteSplits(os.path.join(args.output, "clips"))
        _ = outputs[transforms.REPORT_TAG] | "WriteReport" >> transforms.WriteReport(args.output)
    report_path = os.path.join(args.output, config.REPORT_FILE_NAME)
    print(f"Examples under {args.output}/Split-*/, clips under {args.output}/clips/, report {report_path}")
    print(transforms.summary_line(transforms.summarize_report(report_path)))
    return 0


def _training_settings(args: argparse.Namespace) -> dict:
    settings = {"epochs": args.epochs, "tuning_epochs": args.tuning_epochs}
    if args.weights:
        settings["weights"] = args.weights
    if args.input_size:
        settings["input_size"] = args.input_size
    return settings


def run_local(args: argparse.Namespace) -> int:
    """The main job: the whole pipeline on LocalDagRunner, SQLite ML Metadata and the DirectRunner."""
    from tfx import v1 as tfx

    from pipeline import sample_data
    from pipeline.pipeline import create_pipeline
    from schemas import FACE_SCHEMA_PATH

    output_dir = os.path.abspath(args.output_dir)
    data_root = args.data_root or os.path.join(output_dir, "sample_data")
    if not args.data_root and not os.path.isdir(data_root):
        print(f"Generating {config.LOCAL_SAMPLE_VIDEOS} sample videos under {data_root}", flush=True)
        sample_data.generate(data_root, config.LOCAL_SAMPLE_VIDEOS, seed=0)
    pipeline_root = os.path.join(output_dir, "pipeline_root")
    metadata_path = os.path.join(output_dir, "metadata.sqlite")
    pipeline = create_pipeline(
        pipeline_name=config.PIPELINE_NAME,
        pipeline_root=pipeline_root,
        data_root=os.path.abspath(data_root),
        schema_path=FACE_SCHEMA_PATH,
        ingest_config=_ingest_config(args),
        layout=args.layout,
        beam_pipeline_args=beam_args(args.direct_num_workers),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        backbones=args.backbones.split(","),
        training_settings={"*": _training_settings(args)},
        tuner_trials=args.tuner_trials,
        ensemble_members=args.ensemble.split(",") if args.ensemble else (),
        enable_cache=not args.no_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    print(f"Pipeline finished. Artifacts under {pipeline_root}, ML Metadata in {metadata_path}")
    for report in sorted(
        glob.glob(os.path.join(pipeline_root, "VideoExampleGen", "ingest_report", "*", config.REPORT_FILE_NAME))
    ):
        print(f"Ingest report: {report}")
    print_model_metrics(pipeline_root)
    return 0


def print_model_metrics(pipeline_root: str) -> None:
    """One line per trained model of the latest run: eval AUC, accuracy, log loss and where it is."""
    from pipeline.models import export

    latest = {}
    for path in glob.glob(os.path.join(pipeline_root, "*", "model", "*", export.EVAL_METRICS_FILE)):
        component, _, execution = path.split(os.sep)[-4:-1]
        if int(execution) >= latest.get(component, (-1, ""))[0]:
            latest[component] = (int(execution), path)
    for component, (_, path) in sorted(latest.items()):
        with open(path) as f:
            metrics = json.load(f)
        loss = metrics.get("loss", metrics.get("ensemble_eval_log_loss"))
        accuracy = f"{metrics['accuracy']:.3f}" if "accuracy" in metrics else "  -  "
        print(
            f"{component:<24} eval AUC {metrics['auc']:.3f}  accuracy {accuracy}  log loss {loss:.3f}  "
            f"model {os.path.dirname(path)}"
        )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="extract face examples from a video dataset")
    ingest.add_argument("--input", required=True, help="dataset folder (layout auto-detected)")
    ingest.add_argument("--output", required=True, help="folder for Split-*/ TFRecords and the report")
    _add_ingest_flags(ingest)

    local = commands.add_parser("local", help="run the whole pipeline locally (the main job)")
    local.add_argument("--data-root", help="dataset folder; default: generated sample videos")
    local.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where artifacts and metadata go")
    local.add_argument("--no-cache", action="store_true", help="re-run every component")
    local.add_argument("--backbones", default=",".join(config.LOCAL_BACKBONES), help="comma-separated backbones")
    local.add_argument("--epochs", type=int, default=config.LOCAL_EPOCHS)
    local.add_argument("--tuner-trials", type=int, default=config.LOCAL_TUNER_TRIALS, help="0 skips tuning")
    local.add_argument("--tuning-epochs", type=int, default=config.LOCAL_TUNING_EPOCHS, help="epochs per tuner trial")
    local.add_argument(
        "--ensemble", default=",".join(config.LOCAL_BACKBONES), help="backbones to ensemble ('' for none)"
    )
    local.add_argument("--weights", help="backbone weights: imagenet (needs a network) or a local file; default none")
    local.add_argument(
        "--input-size", type=int, default=config.LOCAL_INPUT_SIZE, help="every backbone's input size (0: its own)"
    )
    _add_ingest_flags(local)

    args = parser.parse_args(argv)
    if args.command == "ingest":
        return run_ingest(args)
    if args.command == "local":
        return run_local(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
