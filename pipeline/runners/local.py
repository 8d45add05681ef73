"""`pipeline_runner.py local`: the main job, the whole pipeline on LocalDagRunner, SQLite ML Metadata, DirectRunner."""

import argparse
import hashlib
import json
import os
from typing import List, Optional, Sequence

from deepfake_detection import component_ids, contract, defaults
from pipeline.runners import OUTPUT_DIR, PROJECT_DIR, SERVING_MODELS_DIR, beam_presets, flags


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("local", help="run the whole pipeline locally (the main job)")
    parser.add_argument("--data-root", help="dataset folder; default: generated sample videos")
    parser.add_argument("--output-dir", default=OUTPUT_DIR, help="where artifacts and metadata go")
    parser.add_argument("--no-cache", action="store_true", help="re-run every component")
    parser.add_argument("--backbones", default=",".join(defaults.LOCAL_BACKBONES), help="comma-separated backbones")
    parser.add_argument("--epochs", type=int, default=defaults.LOCAL_EPOCHS)
    parser.add_argument(
        "--patience", type=int, default=defaults.LOCAL_EARLY_STOPPING_PATIENCE, help="epochs without progress to stop"
    )
    parser.add_argument(
        "--ema-momentum",
        type=float,
        default=defaults.EMA_MOMENTUM,
        help="momentum of the weights' moving average that is validated and exported (0: the raw weights)",
    )
    parser.add_argument(
        "--quality",
        action="store_true",
        help=f"longer training: at least {defaults.QUALITY_EPOCHS} epochs, "
        f"patience {defaults.QUALITY_EARLY_STOPPING_PATIENCE}",
    )
    parser.add_argument(
        "--locator-epochs",
        type=int,
        default=defaults.LOCATOR_EPOCHS,
        help="epochs of each face model's locator, the map of where a face looks pasted over (0: none)",
    )
    parser.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        help="train every backbone from fresh weights, not from its latest blessed model",
    )
    parser.add_argument(
        "--warm-start-epochs",
        type=int,
        default=defaults.WARM_START_EPOCHS,
        help="epochs of a Trainer that starts from its latest blessed model",
    )
    parser.add_argument("--tuner-trials", type=int, default=defaults.LOCAL_TUNER_TRIALS, help="0 skips tuning")
    parser.add_argument(
        "--tuning-epochs", type=int, default=defaults.LOCAL_TUNING_EPOCHS, help="epochs per tuner trial"
    )
    parser.add_argument(
        "--ensemble", default=",".join(defaults.LOCAL_ENSEMBLE), help="backbones to ensemble ('' for none)"
    )
    parser.add_argument("--weights", help="backbone weights: imagenet (needs a network) or a local file; default none")
    parser.add_argument(
        "--input-size", type=int, default=defaults.LOCAL_INPUT_SIZE, help="every backbone's input size (0: its own)"
    )
    parser.add_argument(
        "--serving-dir", help="TF Serving model base paths of pushed models; default OUTPUT/serving_models"
    )
    parser.add_argument("--evaluation-split", default=contract.EVALUATION_SPLIT, choices=contract.SPLIT_NAMES)
    parser.add_argument(
        "--fake-source",
        default=defaults.LOCAL_FAKE_SOURCE,
        choices=contract.FAKE_SOURCES,
        help="training fakes: self-blends of real faces only, the dataset's labelled fakes, or both",
    )
    parser.add_argument("--seed", type=int, default=0, help="training seed: initialisation, shuffling, pseudo-fakes")
    parser.add_argument(
        "--held-out",
        default="",
        help="with dataset or both: comma-separated manipulations left out of training, judged as unseen",
    )
    flags.add_blessing_flags(parser)
    flags.add_ingest_flags(parser)
    flags.add_span_flags(parser)
    parser.add_argument(
        "--direct-num-workers", type=int, default=1, help="DirectRunner worker processes (0: one per core)"
    )
    parser.set_defaults(run=run)


def _local_ingest_config(args: argparse.Namespace):  # noqa: ANN202 - an IngestConfig
    """The main job's ingest: larger eval and test shares unless --split-buckets says otherwise."""
    import dataclasses

    ingest_config = flags.ingest_config(args)
    if args.split_buckets:
        return ingest_config
    return dataclasses.replace(ingest_config, split_buckets=dict(defaults.LOCAL_SPLIT_BUCKETS))


def _training_settings(args: argparse.Namespace) -> dict:
    epochs, patience = args.epochs, args.patience
    if args.quality:
        epochs, patience = max(epochs, defaults.QUALITY_EPOCHS), max(patience, defaults.QUALITY_EARLY_STOPPING_PATIENCE)
    settings = {
        "epochs": epochs,
        "tuning_epochs": args.tuning_epochs,
        "early_stopping_patience": patience,
        "ema_momentum": args.ema_momentum,
        "locator_epochs": args.locator_epochs,
        "warm_start": args.warm_start,
        "warm_start_epochs": args.warm_start_epochs,
        "fake_source": args.fake_source,
        "seed": args.seed,
        "held_out_manipulations": [kind for kind in args.held_out.split(",") if kind],
    }
    if args.weights:
        settings["weights"] = args.weights
    if args.input_size:
        settings["input_size"] = args.input_size
    return settings


# The packages whose code the custom components and the Trainer's module run.
COMPONENT_CODE = tuple(os.path.join(PROJECT_DIR, package) for package in ("deepfake_detection", "components"))


def code_fingerprint(packages: Sequence[str] = COMPONENT_CODE) -> str:
    """A digest of every Python file under `packages` (paths and contents): changes with any edit of that code."""
    digest = hashlib.sha256()
    for package in packages:
        for folder, _, files in sorted(os.walk(package)):
            for name in sorted(f for f in files if f.endswith(".py")):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, os.path.dirname(package)).encode() + b"\0")
                with open(path, "rb") as f:
                    digest.update(f.read() + b"\0")
    return digest.hexdigest()[:16]


def _local_min_unseen_auc(args: argparse.Namespace) -> Optional[float]:
    """The bound on unseen manipulation kinds: the flag, else the main job's whenever training leaves kinds unseen."""
    if args.min_unseen_auc is not None:
        return args.min_unseen_auc
    leaves_kinds_unseen = args.fake_source == contract.FAKE_SOURCE_SELF_BLENDED or bool(args.held_out)
    return defaults.LOCAL_MIN_UNSEEN_AUC if leaves_kinds_unseen else None


def run(args: argparse.Namespace) -> int:
    """The main job: the whole pipeline on LocalDagRunner, SQLite ML Metadata and the DirectRunner."""
    from tfx import v1 as tfx

    from deepfake_detection import sample_data
    from deepfake_detection.evaluation.eval_config import BlessingConfig
    from pipeline.pipeline import PipelineSettings, create_pipeline
    from schemas import FACE_SCHEMA_PATH

    output_dir = os.path.abspath(args.output_dir)
    data_root = args.data_root or os.path.join(output_dir, "sample_data")
    if not args.data_root and not os.path.isdir(data_root):
        print(f"Generating {defaults.LOCAL_SAMPLE_VIDEOS} sample videos under {data_root}", flush=True)
        sample_data.generate(data_root, defaults.LOCAL_SAMPLE_VIDEOS, seed=0)
    pipeline_root = os.path.join(output_dir, "pipeline_root")
    metadata_path = os.path.join(output_dir, "metadata.sqlite")
    serving_dir = os.path.abspath(args.serving_dir or os.path.join(output_dir, SERVING_MODELS_DIR))
    pipeline = create_pipeline(
        pipeline_name=component_ids.PIPELINE_NAME,
        pipeline_root=pipeline_root,
        data_root=os.path.abspath(data_root),
        schema_path=FACE_SCHEMA_PATH,
        settings=PipelineSettings(
            backbones=args.backbones.split(","),
            ingest_config=_local_ingest_config(args),
            layout=args.layout,
            training_settings={"*": _training_settings(args)},
            ensemble_members=flags.ensemble_members(args),
            blessing=BlessingConfig(
                min_auc=args.min_auc,
                max_auc_drop=args.max_auc_drop,
                min_unseen_video_auc=_local_min_unseen_auc(args),
                video_rule=args.video_rule,
            ),
            evaluation_split=args.evaluation_split,
            tuner_trials=args.tuner_trials,
            code_version=code_fingerprint(),
            sample_data=not args.data_root,
            span_pattern=args.span_pattern,
            train_spans=args.train_spans,
            drift_config=flags.drift_config(),
            on_drift=args.on_drift,
        ),
        beam_pipeline_args=beam_presets.beam_args("direct", args.direct_num_workers),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        serving_model_dir=serving_dir,
        enable_cache=not args.no_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    print(f"Pipeline finished. Artifacts under {pipeline_root}, ML Metadata in {metadata_path}")
    print(ingest_line(metadata_path))
    print(drift_line(pipeline_root))
    print_summary(pipeline_root, serving_dir, args.evaluation_split, args.video_rule)
    return 0


def print_summary(pipeline_root: str, serving_dir: str, evaluation_split: str, video_rule: str) -> None:
    """What the run produced: ingest reports, training and evaluation figures, videos without a face, the push."""
    from deepfake_detection.evaluation import report
    from serving.model_server import model_config

    report_paths = [
        os.path.join(folder, contract.REPORT_FILE_NAME)
        for folder in report.latest_output_dirs(pipeline_root, "ingest_report", "VideoExampleGen").values()
    ]
    for path in report_paths:
        print(f"Ingest report: {path}")
    print("Training (eval split, early stopping and checkpoints watched it):")
    print_model_metrics(pipeline_root)
    print(f"Evaluation on the {evaluation_split} split (frame metrics | video metrics, rule {video_rule}):")
    for line in report.evaluation_lines(pipeline_root, serving_dir):
        print(line)
    print(f"Operating points (fitted on the eval split; rates on the {evaluation_split} split, 95 % intervals):")
    for line in report.operating_point_lines(pipeline_root):
        print(line)
    print_edge_exports(pipeline_root)
    no_face = [r["video"] for r in _report_rows(report_paths) if r["status"] == contract.STATUS_NO_FACE]
    if no_face:
        print(f"{len(no_face)} videos had no face and are not scored (see the ingest report): {', '.join(no_face[:5])}")
    if model_config.discover_models(serving_dir):
        print(f"Serve the pushed models with: python pipeline_runner.py serve --serving-dir {serving_dir}")
    else:
        print(f"No model was blessed, so none was pushed to {serving_dir}: see the evaluation above.")


def ingest_line(metadata_path: str) -> str:
    """What the run's ingest did: the span (and version) it read, or that nothing new was there to decode."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx import v1 as tfx

    from components.video_example_gen.component import VideoExampleGen

    store = metadata_store.MetadataStore(tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path))
    executions = store.get_executions_by_type(VideoExampleGen.get_class_type())
    if not executions:
        return "Ingest: no run recorded"
    execution = max(executions, key=lambda e: e.id)
    events = store.get_events_by_execution_ids([execution.id])
    outputs = store.get_artifacts_by_id([e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT])
    examples = next(a for a in outputs if "input_fingerprint" in a.custom_properties)
    span, version = (examples.custom_properties[key].int_value for key in ("span", "version"))
    if execution.last_known_state == metadata_store_pb2.Execution.CACHED:
        return f"Ingest: no new span or video; span {span} (version {version}) came from the cache, nothing decoded"
    return f"Ingest: span {span} (version {version}) read and decoded"


def latest_drift(pipeline_root: str) -> Optional[dict]:
    """The gate's latest record of drift between the newest span and the previous one (None: not measured)."""
    from components.anomaly_gate.executor import RESULT_FILE_NAME
    from deepfake_detection.evaluation import report

    results = report.latest_output_dirs(pipeline_root, "result", "AnomalyGate")
    if not results:
        return None
    with open(os.path.join(next(iter(results.values())), RESULT_FILE_NAME)) as f:
        return json.load(f).get("drift")


def drift_line(pipeline_root: str) -> str:
    """The one line on drift between the newest span and the previous one."""
    from components.anomaly_gate.gate import drift_line as line_of

    return line_of(latest_drift(pipeline_root))


def _report_rows(report_paths: List[str]) -> List[dict]:
    rows = []
    for path in report_paths:
        with open(path) as f:
            rows.extend(json.loads(line) for line in f)
    return rows


def print_edge_exports(pipeline_root: str) -> None:
    """Each face model's edge exports as checked before the push (models/edge.py), or why one was not made."""
    from deepfake_detection import edge_runtime
    from deepfake_detection.evaluation import report
    from deepfake_detection.models import edge, export

    for component, model_uri in report.latest_output_dirs(pipeline_root, "model").items():
        checked = edge_runtime.read_json(
            edge_runtime.edge_folder(os.path.join(model_uri, export.SERVING_DIR)), contract.EDGE_REPORT_FILE
        )
        if checked:
            print(f"Edge exports of {component} (only those marked pushed ship):")
            for line in edge.report_lines(checked):
                print(f"  {line}")


def print_model_metrics(pipeline_root: str) -> None:
    """Per trained model of the latest run: eval AUC, accuracy, log loss and where it is; where its training
    started (a blessed model's weights, or a fresh start and why) and for how many epochs."""
    from deepfake_detection.evaluation import report
    from deepfake_detection.models import export

    for component, model_uri in report.latest_output_dirs(pipeline_root, "model").items():
        metrics = export.read_eval_metrics(model_uri)
        if metrics is None:
            continue
        loss = metrics.get("loss", metrics.get("ensemble_eval_log_loss"))
        accuracy = f"{metrics['accuracy']:.3f}" if "accuracy" in metrics else "  -  "
        print(
            f"{component:<24} eval AUC {report.format_auc(metrics)}  accuracy {accuracy}  log loss {loss:.3f}  "
            f"model {model_uri}"
        )
        started = report.starting_text(metrics)
        if started:
            print(f"{'':<24} {started}")
