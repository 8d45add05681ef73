"""Runners of the deepfake detection pipeline: they bind paths, metadata and Beam args.

    python pipeline_runner.py local  [--data-root DIR] [--output-dir DIR]   # the whole pipeline, locally
    python pipeline_runner.py ingest --input DIR --output DIR [--layout L]  # faces only, no TFX
    python pipeline_runner.py serve  [--serving-dir DIR] [--pin M=V]         # serve the pushed models
    python pipeline_runner.py compile [--output FILE] [--image IMAGE]       # Kubeflow V2 pipeline JSON
    python pipeline_runner.py submit  --endpoint URL [--param NAME=VALUE]   # one run on Kubeflow Pipelines
    python pipeline_runner.py schedule --cron '0 3 * * 1' --endpoint URL    # scheduled retraining

The graph itself lives in `pipeline.pipeline.create_pipeline`; nothing here
builds components.
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from deepfake_detection import config
from deepfake_detection.evaluation import video_scores

DEFAULT_OUTPUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs")
SERVING_MODELS_DIR = "serving_models"


def _add_ingest_flags(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--direct-num-workers", type=int, default=1, help="DirectRunner worker processes (0: one per core)"
    )


def _ingest_config(args: argparse.Namespace):
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


BEAM_RUNNERS = ("direct", "dataflow", "flink", "spark")


def beam_args(
    runner: str = "direct",
    direct_num_workers: int = 1,
    project: Optional[str] = None,
    region: Optional[str] = None,
    temp_location: Optional[str] = None,
    image: Optional[str] = None,
    flink_master: Optional[str] = None,
    spark_master: Optional[str] = None,
) -> List[str]:
    """Beam arguments of each preset.

    - direct: in one process by default, `direct_num_workers` processes when
      asked (0: one per core);
    - dataflow: Google Cloud Dataflow in `project`/`region`, staging under
      `temp_location`, workers on the pipeline `image` (Runner v2);
    - flink / spark: a Flink or Spark cluster at `flink_master` /
      `spark_master`, Python workers in the pipeline `image` (Docker environment).
    """
    if runner == "direct":
        if direct_num_workers == 1:
            return ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
        return ["--direct_running_mode=multi_processing", f"--direct_num_workers={direct_num_workers}"]
    needs = {
        "dataflow": {"project": project, "region": region, "temp_location": temp_location, "image": image},
        "flink": {"flink_master": flink_master, "image": image},
        "spark": {"spark_master": spark_master, "image": image},
    }
    if runner not in needs:
        raise ValueError(f"Unknown Beam runner {runner!r}; expected one of {list(BEAM_RUNNERS)}")
    missing = [f"--{name.replace('_', '-')}" for name, value in needs[runner].items() if not value]
    if missing:
        raise ValueError(f"The {runner} Beam preset needs {', '.join(missing)}")
    if runner == "dataflow":
        return [
            "--runner=DataflowRunner",
            f"--project={project}",
            f"--region={region}",
            f"--temp_location={temp_location}",
            f"--sdk_container_image={image}",
            "--experiments=use_runner_v2",
        ]
    container = ["--environment_type=DOCKER", f"--environment_config={image}"]
    if runner == "flink":
        return ["--runner=FlinkRunner", f"--flink_master={flink_master}", *container]
    return ["--runner=SparkRunner", f"--spark_master_url={spark_master}", *container]


def run_ingest(args: argparse.Namespace) -> int:
    """Standalone ingest: the VideoExampleGen transforms without TFX or ML Metadata."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from components.video_example_gen import transforms
    from deepfake_detection.ingest.readers import read_dataset

    ingest_config = _ingest_config(args)
    records = read_dataset(args.input, args.layout)
    print(f"Found {len(records)} files under {args.input}", file=sys.stderr, flush=True)
    if not records:
        print("Nothing to ingest.", file=sys.stderr)
        return 1
    options = PipelineOptions(beam_args("direct", args.direct_num_workers))
    with beam.Pipeline(options=options) as pipeline:
        outputs = pipeline | "IngestVideos" >> transforms.IngestVideos(records, ingest_config)
        _ = outputs[transforms.FACES_TAG] | "WriteFaces" >> transforms.WriteSplits(args.output)
        _ = outputs[transforms.CLIPS_TAG] | "WriteClips" >> transforms.WriteSplits(os.path.join(args.output, "clips"))
        _ = outputs[transforms.REPORT_TAG] | "WriteReport" >> transforms.WriteReport(args.output)
    report_path = os.path.join(args.output, config.REPORT_FILE_NAME)
    print(f"Examples under {args.output}/Split-*/, clips under {args.output}/clips/, report {report_path}")
    print(transforms.summary_line(transforms.summarize_report(report_path)))
    return 0


def _local_ingest_config(args: argparse.Namespace):  # noqa: ANN202 - an IngestConfig
    """The main job's ingest: larger eval and test shares unless --split-buckets says otherwise."""
    import dataclasses

    ingest_config = _ingest_config(args)
    if args.split_buckets:
        return ingest_config
    return dataclasses.replace(ingest_config, split_buckets=dict(config.LOCAL_SPLIT_BUCKETS))


def _training_settings(args: argparse.Namespace) -> dict:
    settings = {
        "epochs": args.epochs,
        "tuning_epochs": args.tuning_epochs,
        "early_stopping_patience": config.LOCAL_EARLY_STOPPING_PATIENCE,
        "fake_source": args.fake_source,
        "seed": args.seed,
        "held_out_manipulations": [kind for kind in args.held_out.split(",") if kind],
    }
    if args.weights:
        settings["weights"] = args.weights
    if args.input_size:
        settings["input_size"] = args.input_size
    return settings


def _ensemble_members(args: argparse.Namespace) -> List[str]:
    """--ensemble's backbones; when it is not given, every one of --backbones if there are two or more."""
    if args.ensemble is None:
        backbones = args.backbones.split(",")
        return backbones if len(backbones) >= 2 else []
    return [name for name in args.ensemble.split(",") if name]


def _local_min_unseen_auc(args: argparse.Namespace) -> Optional[float]:
    """The bound on unseen manipulation kinds: the flag, else the main job's whenever training leaves kinds unseen."""
    if args.min_unseen_auc is not None:
        return args.min_unseen_auc
    leaves_kinds_unseen = args.fake_source == config.FAKE_SOURCE_SELF_BLENDED or bool(args.held_out)
    return config.LOCAL_MIN_UNSEEN_AUC if leaves_kinds_unseen else None


def run_local(args: argparse.Namespace) -> int:
    """The main job: the whole pipeline on LocalDagRunner, SQLite ML Metadata and the DirectRunner."""
    from tfx import v1 as tfx

    from deepfake_detection import sample_data
    from deepfake_detection.evaluation import report
    from deepfake_detection.evaluation.eval_config import BlessingConfig
    from pipeline.pipeline import create_pipeline
    from schemas import FACE_SCHEMA_PATH

    output_dir = os.path.abspath(args.output_dir)
    data_root = args.data_root or os.path.join(output_dir, "sample_data")
    if not args.data_root and not os.path.isdir(data_root):
        print(f"Generating {config.LOCAL_SAMPLE_VIDEOS} sample videos under {data_root}", flush=True)
        sample_data.generate(data_root, config.LOCAL_SAMPLE_VIDEOS, seed=0)
    pipeline_root = os.path.join(output_dir, "pipeline_root")
    metadata_path = os.path.join(output_dir, "metadata.sqlite")
    serving_dir = os.path.abspath(args.serving_dir or os.path.join(output_dir, SERVING_MODELS_DIR))
    pipeline = create_pipeline(
        pipeline_name=config.PIPELINE_NAME,
        pipeline_root=pipeline_root,
        data_root=os.path.abspath(data_root),
        schema_path=FACE_SCHEMA_PATH,
        ingest_config=_local_ingest_config(args),
        layout=args.layout,
        beam_pipeline_args=beam_args("direct", args.direct_num_workers),
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path),
        backbones=args.backbones.split(","),
        training_settings={"*": _training_settings(args)},
        tuner_trials=args.tuner_trials,
        ensemble_members=_ensemble_members(args),
        blessing=BlessingConfig(
            min_auc=args.min_auc,
            max_auc_drop=args.max_auc_drop,
            min_unseen_video_auc=_local_min_unseen_auc(args),
            video_rule=args.video_rule,
        ),
        evaluation_split=args.evaluation_split,
        serving_model_dir=serving_dir,
        enable_cache=not args.no_cache,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)
    print(f"Pipeline finished. Artifacts under {pipeline_root}, ML Metadata in {metadata_path}")
    report_paths = [
        os.path.join(folder, config.REPORT_FILE_NAME)
        for folder in report.latest_output_dirs(pipeline_root, "ingest_report", "VideoExampleGen").values()
    ]
    for path in report_paths:
        print(f"Ingest report: {path}")
    print("Training (eval split, early stopping and checkpoints watched it):")
    print_model_metrics(pipeline_root)
    print(f"Evaluation on the {args.evaluation_split} split (frame metrics | video metrics, rule {args.video_rule}):")
    for line in report.evaluation_lines(pipeline_root, serving_dir):
        print(line)
    no_face = [r["video"] for r in _report_rows(report_paths) if r["status"] == config.STATUS_NO_FACE]
    if no_face:
        print(f"{len(no_face)} videos had no face and are not scored (see the ingest report): {', '.join(no_face[:5])}")
    print(f"Serve the pushed models with: python pipeline_runner.py serve --serving-dir {serving_dir}")
    return 0


def _report_rows(report_paths: List[str]) -> List[dict]:
    rows = []
    for path in report_paths:
        with open(path) as f:
            rows.extend(json.loads(line) for line in f)
    return rows


def print_model_metrics(pipeline_root: str) -> None:
    """One line per trained model of the latest run: eval AUC, accuracy, log loss and where it is."""
    from deepfake_detection.evaluation import report
    from deepfake_detection.models import export

    for component, model_uri in report.latest_output_dirs(pipeline_root, "model").items():
        path = os.path.join(model_uri, export.EVAL_METRICS_FILE)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            metrics = json.load(f)
        loss = metrics.get("loss", metrics.get("ensemble_eval_log_loss"))
        accuracy = f"{metrics['accuracy']:.3f}" if "accuracy" in metrics else "  -  "
        print(
            f"{component:<24} eval AUC {report.format_auc(metrics)}  accuracy {accuracy}  log loss {loss:.3f}  "
            f"model {os.path.dirname(path)}"
        )


def _versions_by_model(pairs: List[str], flag: str) -> dict:
    values = {}
    for pair in pairs:
        name, _, version = pair.partition("=")
        if not name or not version.isdigit():
            raise SystemExit(f"{flag} {pair!r}: expected MODEL=VERSION, e.g. meso4=1732000000")
        values[name] = int(version)
    return values


def run_serve(args: argparse.Namespace) -> int:
    """Serves every model pushed under the serving directory: TF Serving when installed, else the local server."""
    from serving import launch, model_config

    serving_dir = os.path.abspath(args.serving_dir)
    names = model_config.discover_models(serving_dir)
    if not names:
        print(f"No pushed model under {serving_dir}: run `python pipeline_runner.py local` first.", file=sys.stderr)
        return 1
    pins = _versions_by_model(args.pin, "--pin")
    canaries = _versions_by_model(args.canary, "--canary")
    unknown = sorted((set(pins) | set(canaries)) - set(names))
    if unknown:
        print(f"--pin/--canary name unknown models {unknown}; pushed models are {names}", file=sys.stderr)
        return 1
    models = []
    for name in names:
        base_path = os.path.join(serving_dir, name)
        if name in pins:
            models.append(model_config.release(name, base_path, stable=pins[name], canary=canaries.get(name)))
        elif name in canaries:
            print(f"--canary {name} needs --pin {name}=STABLE_VERSION beside it", file=sys.stderr)
            return 1
        else:
            models.append(model_config.ServingModel(name, base_path))
    batching = model_config.BatchingSettings(num_batch_threads=os.cpu_count() or 1)
    paths = model_config.write_serving_configs(os.path.abspath(args.config_dir), models, batching)
    command = launch.model_server_command(
        paths[model_config.MODELS_CONFIG_FILE],
        args.grpc_port,
        args.rest_port,
        monitoring_config=paths[model_config.MONITORING_FILE],
        batching_parameters=paths[model_config.BATCHING_FILE],
    )
    print(f"Serving {names} from {serving_dir}: gRPC :{args.grpc_port}, REST :{args.rest_port}", flush=True)
    print(" ".join(command), flush=True)
    os.execvp(command[0], command)  # the server takes over this process, and its signals
    return 0


# The Kubeflow pipeline's runtime parameters and their types.
RUNTIME_PARAMETERS = {"data_root": str, "epochs": int, "tuner_trials": int, "min_auc": float, "max_auc_drop": float}


def kubeflow_pipeline(args: argparse.Namespace):  # noqa: ANN201 - a tfx.dsl.Pipeline
    """The same factory, bound for Kubeflow: paths in the cluster, per-run knobs as runtime parameters."""
    from tfx.orchestration import data_types

    from deepfake_detection.evaluation.eval_config import BlessingConfig
    from pipeline.pipeline import RunSettings, create_pipeline

    def parameter(name: str) -> data_types.RuntimeParameter:
        ptype = RUNTIME_PARAMETERS[name]
        return data_types.RuntimeParameter(name=name, ptype=ptype, default=ptype(getattr(args, name)))

    serving_dir = args.serving_dir or f"{args.pipeline_root.rstrip('/')}/{SERVING_MODELS_DIR}"
    return create_pipeline(
        pipeline_name=args.pipeline_name,
        pipeline_root=args.pipeline_root,
        data_root=parameter("data_root"),
        schema_path=args.schema_path,
        layout=args.layout,
        backbones=args.backbones.split(","),
        training_settings={"*": {"weights": args.weights}} if args.weights else None,
        ensemble_members=_ensemble_members(args),
        blessing=BlessingConfig(min_unseen_video_auc=args.min_unseen_auc, video_rule=args.video_rule),
        run_settings=RunSettings(
            epochs=parameter("epochs"),
            tuner_trials=parameter("tuner_trials"),
            min_auc=parameter("min_auc"),
            max_auc_drop=parameter("max_auc_drop"),
        ),
        serving_model_dir=serving_dir,
        beam_pipeline_args=beam_args(
            args.beam_runner,
            args.direct_num_workers,
            project=args.project,
            region=args.region,
            temp_location=args.temp_location,
            image=args.image,
            flink_master=args.flink_master,
            spark_master=args.spark_master,
        ),
    )


def compile_pipeline(args: argparse.Namespace, output: str) -> dict:
    """KubeflowV2DagRunner's compilation, written as the bare PipelineSpec (JSON) the KFP API and UI take."""
    import tempfile

    from tfx import v1 as tfx

    with tempfile.TemporaryDirectory() as work:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=args.image),
            output_dir=work,
            output_filename="pipeline_job.json",
        )
        runner.run(kubeflow_pipeline(args), write_out=True)
        with open(os.path.join(work, "pipeline_job.json")) as f:
            spec = json.load(f)["pipelineSpec"]
    spec["defaultPipelineRoot"] = args.pipeline_root
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(spec, f, indent=1, sort_keys=True)
    return spec


def run_compile(args: argparse.Namespace) -> int:
    spec = compile_pipeline(args, args.output)
    tasks = spec["root"]["dag"]["tasks"]
    parameters = sorted(spec["root"]["inputDefinitions"]["parameters"])
    print(f"Compiled {len(tasks)} tasks with runtime parameters {parameters} to {args.output}")
    return 0


def _kfp_client(args: argparse.Namespace):  # noqa: ANN202 - a kfp.Client
    """The KFP client; endpoint and token come from flags or the environment, never from the pipeline."""
    import kfp

    endpoint = args.endpoint or os.environ.get("KFP_ENDPOINT")
    if not endpoint:
        raise SystemExit("Give the Kubeflow Pipelines endpoint with --endpoint or KFP_ENDPOINT")
    token = args.token or os.environ.get("KFP_TOKEN")
    return kfp.Client(host=endpoint, existing_token=token, namespace=args.namespace)


def _run_parameters(args: argparse.Namespace) -> dict:
    """--param NAME=VALUE pairs, typed as the runtime parameters they set."""
    values = {}
    for pair in args.param:
        name, _, value = pair.partition("=")
        if name not in RUNTIME_PARAMETERS or not value:
            raise SystemExit(f"--param {pair!r}: expected NAME=VALUE with NAME among {list(RUNTIME_PARAMETERS)}")
        try:
            values[name] = RUNTIME_PARAMETERS[name](value)
        except ValueError as e:
            raise SystemExit(f"--param {pair!r}: {e}") from e
    return values


def _compiled_package(args: argparse.Namespace, work: str) -> str:
    """The compiled PipelineSpec as the `.yaml` package the KFP client uploads (JSON is YAML)."""
    package = os.path.join(work, f"{args.pipeline_name}.yaml")
    if args.package:
        with open(args.package) as source, open(package, "w") as target:
            target.write(source.read())
    else:
        compile_pipeline(args, package)
    return package


def normalize_cron(expression: str) -> str:
    """KFP's cron has six fields (seconds first); a five-field crontab line gets `0` seconds."""
    fields = expression.split()
    if len(fields) == 5:
        fields.insert(0, "0")
    if len(fields) != 6:
        raise ValueError(f"Invalid cron expression {expression!r}: expected 5 or 6 fields, e.g. '0 3 * * *'")
    return " ".join(fields)


def run_submit(args: argparse.Namespace) -> int:
    import tempfile

    parameters = _run_parameters(args)
    client = _kfp_client(args)
    with tempfile.TemporaryDirectory() as work:
        run = client.create_run_from_pipeline_package(
            _compiled_package(args, work),
            arguments=parameters,
            run_name=args.run_name,
            experiment_name=args.experiment,
            enable_caching=not args.no_cache,
        )
    print(f"Submitted run {run.run_id} in experiment {args.experiment!r}")
    return 0


def run_schedule(args: argparse.Namespace) -> int:
    import tempfile

    try:
        cron = normalize_cron(args.cron)
    except ValueError as e:
        raise SystemExit(str(e)) from e
    parameters = _run_parameters(args)
    client = _kfp_client(args)
    experiment = client.create_experiment(args.experiment, namespace=args.namespace)
    with tempfile.TemporaryDirectory() as work:
        recurring = client.create_recurring_run(
            experiment_id=experiment.experiment_id,
            job_name=args.run_name or f"{args.pipeline_name}-retraining",
            cron_expression=cron,
            params=parameters,
            pipeline_package_path=_compiled_package(args, work),
            max_concurrency=1,
            no_catchup=True,
            enable_caching=not args.no_cache,
        )
    print(f"Scheduled recurring run {recurring.recurring_run_id} ({cron}) in experiment {args.experiment!r}")
    return 0


def _add_kubeflow_flags(parser: argparse.ArgumentParser) -> None:
    from deepfake_detection.ingest.readers import LAYOUT_AUTO, LAYOUTS

    parser.add_argument("--pipeline-name", default=config.PIPELINE_NAME)
    parser.add_argument("--pipeline-root", default=config.KUBEFLOW_PIPELINE_ROOT, help="object storage root")
    parser.add_argument("--image", default=config.PIPELINE_IMAGE, help="the pipeline image (infra/Dockerfile)")
    parser.add_argument("--schema-path", default=config.IMAGE_SCHEMA_PATH, help="the curated schema inside the image")
    parser.add_argument("--serving-dir", help="model base paths of pushed models; default PIPELINE_ROOT/serving_models")
    parser.add_argument("--data-root", default=config.KUBEFLOW_DATA_ROOT, help="default of the data_root parameter")
    parser.add_argument("--layout", default=LAYOUT_AUTO, choices=(LAYOUT_AUTO,) + LAYOUTS)
    parser.add_argument("--backbones", default=",".join(config.KUBEFLOW_BACKBONES))
    parser.add_argument(
        "--ensemble", help="backbones to ensemble; default: every backbone when there are two or more; '' for none"
    )
    parser.add_argument("--weights", help="backbone weights: imagenet or a weights file in the image")
    parser.add_argument("--epochs", type=int, default=config.LOCAL_EPOCHS, help="default of the epochs parameter")
    parser.add_argument("--tuner-trials", type=int, default=config.LOCAL_TUNER_TRIALS)
    _add_blessing_flags(parser)
    parser.add_argument("--beam-runner", default="direct", choices=BEAM_RUNNERS, help="Beam preset, see beam_args")
    parser.add_argument("--direct-num-workers", type=int, default=0, help="direct: processes (0: one per core)")
    parser.add_argument("--project", help="dataflow: GCP project")
    parser.add_argument("--region", help="dataflow: GCP region")
    parser.add_argument("--temp-location", help="dataflow: gs:// staging folder")
    parser.add_argument("--flink-master", help="flink: HOST:PORT of the job manager")
    parser.add_argument("--spark-master", help="spark: spark://HOST:PORT")


def _add_blessing_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-auc", type=float, default=config.LOCAL_MIN_AUC, help="blessing: lowest test AUC")
    parser.add_argument(
        "--max-auc-drop", type=float, default=0.0, help="blessing: how far below the last blessed model's AUC"
    )
    parser.add_argument(
        "--min-unseen-auc",
        type=float,
        default=None,
        help="blessing: lowest video AUC on manipulation kinds the model never trained on "
        f"(local default {config.LOCAL_MIN_UNSEEN_AUC} when some are unseen; else no bound)",
    )
    parser.add_argument("--video-rule", default=video_scores.RULE_MEAN, choices=sorted(video_scores.RULES))


def _add_kfp_client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="KFP API endpoint (or KFP_ENDPOINT)")
    parser.add_argument("--token", help="bearer token (or KFP_TOKEN); never stored in the pipeline")
    parser.add_argument("--namespace", help="Kubeflow profile namespace")
    parser.add_argument("--experiment", default=config.PIPELINE_NAME)
    parser.add_argument("--run-name")
    parser.add_argument("--package", help="a compiled pipeline JSON to use instead of compiling now")
    parser.add_argument("--param", action="append", default=[], help=f"NAME=VALUE, NAME in {list(RUNTIME_PARAMETERS)}")
    parser.add_argument("--no-cache", action="store_true", help="disable caching for the run")


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
        "--ensemble", default=",".join(config.LOCAL_ENSEMBLE), help="backbones to ensemble ('' for none)"
    )
    local.add_argument("--weights", help="backbone weights: imagenet (needs a network) or a local file; default none")
    local.add_argument(
        "--input-size", type=int, default=config.LOCAL_INPUT_SIZE, help="every backbone's input size (0: its own)"
    )
    local.add_argument(
        "--serving-dir", help="TF Serving model base paths of pushed models; default OUTPUT/serving_models"
    )
    local.add_argument("--evaluation-split", default=config.EVALUATION_SPLIT, choices=config.SPLIT_NAMES)
    local.add_argument(
        "--fake-source",
        default=config.LOCAL_FAKE_SOURCE,
        choices=config.FAKE_SOURCES,
        help="training fakes: self-blends of real faces only, the dataset's labelled fakes, or both",
    )
    local.add_argument("--seed", type=int, default=0, help="training seed: initialisation, shuffling, pseudo-fakes")
    local.add_argument(
        "--held-out",
        default="",
        help="with dataset or both: comma-separated manipulations left out of training, judged as unseen",
    )
    _add_blessing_flags(local)
    _add_ingest_flags(local)

    serve = commands.add_parser(
        "serve", help="serve the pushed models (TF Serving if installed, else the local server)"
    )
    serve.add_argument("--serving-dir", default=os.path.join(DEFAULT_OUTPUT_DIR, SERVING_MODELS_DIR))
    serve.add_argument("--config-dir", default=os.path.join(DEFAULT_OUTPUT_DIR, "serving_config"))
    serve.add_argument("--grpc-port", type=int, default=8500)
    serve.add_argument("--rest-port", type=int, default=8501)
    serve.add_argument("--pin", action="append", default=[], help="MODEL=VERSION: serve only this version (rollback)")
    serve.add_argument("--canary", action="append", default=[], help="MODEL=VERSION: also serve as canary beside --pin")

    compile_ = commands.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (V2 JSON)")
    compile_.add_argument("--output", default=os.path.join(DEFAULT_OUTPUT_DIR, f"{config.PIPELINE_NAME}.json"))
    _add_kubeflow_flags(compile_)
    submit = commands.add_parser("submit", help="compile and start one run on Kubeflow Pipelines")
    _add_kubeflow_flags(submit)
    _add_kfp_client_flags(submit)
    schedule = commands.add_parser("schedule", help="compile and create a recurring run (scheduled retraining)")
    schedule.add_argument("--cron", required=True, help="e.g. '0 3 * * 1' (weekly, Monday 03:00)")
    _add_kubeflow_flags(schedule)
    _add_kfp_client_flags(schedule)

    args = parser.parse_args(argv)
    if args.command in ("compile", "submit", "schedule"):
        return {"compile": run_compile, "submit": run_submit, "schedule": run_schedule}[args.command](args)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "ingest":
        return run_ingest(args)
    if args.command == "local":
        return run_local(args)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
