"""`pipeline_runner.py compile | submit | schedule`: the pipeline on Kubeflow Pipelines (V2), run once or on a cron."""

import argparse
import dataclasses
import json
import os
import re
from typing import Any, Dict

from deepfake_detection import component_ids, defaults
from pipeline.runners import OUTPUT_DIR, SERVING_MODELS_DIR, beam_presets, flags


def add_parsers(commands: argparse._SubParsersAction) -> None:
    compile_ = commands.add_parser("compile", help="compile the pipeline for Kubeflow Pipelines (V2 JSON)")
    compile_.add_argument("--output", default=os.path.join(OUTPUT_DIR, f"{component_ids.PIPELINE_NAME}.json"))
    _add_kubeflow_flags(compile_)
    compile_.set_defaults(run=run_compile)
    submit = commands.add_parser("submit", help="compile and start one run on Kubeflow Pipelines")
    _add_kubeflow_flags(submit)
    _add_kfp_client_flags(submit)
    submit.set_defaults(run=run_submit)
    schedule = commands.add_parser("schedule", help="compile and create a recurring run (scheduled retraining)")
    schedule.add_argument("--cron", required=True, help="e.g. '0 3 * * 1' (weekly, Monday 03:00)")
    _add_kubeflow_flags(schedule)
    _add_kfp_client_flags(schedule)
    schedule.set_defaults(run=run_schedule)


# The Kubeflow pipeline's runtime parameters and their types. `input_config` is the ingest's TFX input config
# (JSON), which TFX's ExampleGen driver reads before the cache check; `--param span_pattern=...` sets it.
# `warm_start`: 1 starts each Trainer from its backbone's latest blessed model where the architecture matches, 0 fresh.
RUNTIME_PARAMETERS = {
    "data_root": str,
    "input_config": str,
    "epochs": int,
    "warm_start": int,
    "tuner_trials": int,
    "min_auc": float,
    "max_auc_drop": float,
}
SPAN_PATTERN_PARAM = "span_pattern"


# Kubernetes quantities of memory, in the unit of KFP's ResourceSpec: decimal gigabytes (as kfp.dsl's set_memory_limit).
_MEMORY_UNITS = {"": 1e-9, "K": 1e-6, "Ki": 1024 / 1e9, "M": 1e-3, "Mi": 1024**2 / 1e9, "G": 1.0, "Gi": 1024**3 / 1e9}
_MEMORY_UNITS.update({"T": 1e3, "Ti": 1024**4 / 1e9})


def memory_gb(quantity: str) -> float:
    """`32G`, `30Gi`, `512Mi` (a bare number is bytes) in decimal gigabytes; ValueError for anything else."""
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT]i?)?", quantity.strip())
    if not match:
        raise ValueError(f"Invalid memory quantity {quantity!r}: expected e.g. 32G, 30Gi or 512Mi")
    return round(float(match.group(1)) * _MEMORY_UNITS[match.group(2) or ""], 6)


@dataclasses.dataclass(frozen=True)
class TaskResources:
    """What one Kubeflow task's container asks of its node: requests equal to limits, so that a training pod
    keeps the CPUs and memory it was scheduled for, and GPUs of one type."""

    cpus: float
    memory: str
    gpus: int = 0
    gpu_type: str = ""

    def resource_spec(self) -> Any:
        """The task's `PipelineContainerSpec.ResourceSpec`, which KubeflowV2DagRunner copies from a component's
        platform config into its executor."""
        from kfp.pipeline_spec import pipeline_spec_pb2

        memory = memory_gb(self.memory)
        spec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(
            cpu_request=self.cpus, cpu_limit=self.cpus, memory_request=memory, memory_limit=memory
        )
        if self.gpus:
            spec.accelerator.type = self.gpu_type
            spec.accelerator.count = self.gpus
        return spec


def task_resources(args: argparse.Namespace) -> Dict[str, TaskResources]:
    """Resources by component id prefix: every training task (each backbone's Tuner and Trainer, the
    EnsembleTrainer) on GPUs, where Keras picks MirroredStrategy and mixed_float16; the ingest's pod sized for
    its Beam workers (one process per CPU with the direct preset)."""
    from pipeline.data_nodes import VIDEO_EXAMPLE_GEN_ID
    from pipeline.pipeline import ENSEMBLE_TRAINER_ID

    if args.trainer_gpus and not args.trainer_gpu_type:
        raise SystemExit("--trainer-gpus needs --trainer-gpu-type (e.g. nvidia-tesla-t4)")
    training = TaskResources(args.trainer_cpus, args.trainer_memory, args.trainer_gpus, args.trainer_gpu_type)
    ingest = TaskResources(args.ingest_cpus, args.ingest_memory)
    return {
        component_ids.TRAINER: training,
        component_ids.TUNER: training,
        ENSEMBLE_TRAINER_ID: training,
        VIDEO_EXAMPLE_GEN_ID: ingest,
    }


def bind_resources(pipeline: Any, resources: Dict[str, TaskResources]) -> Any:
    """Attaches each task's ResourceSpec as its component's platform config (ids `Kind` or `Kind.model`)."""
    for component in pipeline.components:
        kind = component.id.split(".")[0]
        if kind in resources:
            component.with_platform_config(resources[kind].resource_spec())
    return pipeline


def ingest_workers(args: argparse.Namespace) -> int:
    """Direct-runner processes of the ingest: as asked, else one per CPU its pod requests (a container sees all
    of its node's cores, so Beam's own default would oversubscribe the pod)."""
    return args.direct_num_workers or max(1, int(args.ingest_cpus))


def kubeflow_pipeline(args: argparse.Namespace):  # noqa: ANN201 - a tfx.dsl.Pipeline
    """The same factory, bound for Kubeflow: paths in the cluster, per-run knobs as runtime parameters."""
    from tfx.orchestration import data_types

    from components.video_example_gen import spans
    from deepfake_detection.evaluation.eval_config import BlessingConfig
    from pipeline.pipeline import PipelineSettings, create_pipeline

    def parameter(name: str, default: Any = None) -> data_types.RuntimeParameter:
        ptype = RUNTIME_PARAMETERS[name]
        return data_types.RuntimeParameter(name=name, ptype=ptype, default=ptype(default or getattr(args, name)))

    serving_dir = args.serving_dir or f"{args.pipeline_root.rstrip('/')}/{SERVING_MODELS_DIR}"
    pipeline = create_pipeline(
        pipeline_name=args.pipeline_name,
        pipeline_root=args.pipeline_root,
        data_root=parameter("data_root"),
        schema_path=args.schema_path,
        settings=PipelineSettings(
            backbones=args.backbones.split(","),
            layout=args.layout,
            training_settings={"*": {"weights": args.weights}} if args.weights else {},
            ensemble_members=flags.ensemble_members(args),
            blessing=BlessingConfig(min_unseen_video_auc=args.min_unseen_auc, video_rule=args.video_rule),
            epochs=parameter("epochs"),
            warm_start=parameter("warm_start"),
            tuner_trials=parameter("tuner_trials"),
            min_auc=parameter("min_auc"),
            max_auc_drop=parameter("max_auc_drop"),
            # Kubeflow V2 compiles only latest-artifact resolvers (TFX 1.16), so neither the window of spans nor
            # the previous span's statistics: each run trains on the span it ingested (docs/continuous-training.md).
            span_pattern=parameter("input_config", spans.input_config_json(args.span_pattern)),
            train_spans=None,
        ),
        serving_model_dir=serving_dir,
        beam_pipeline_args=beam_presets.beam_args(
            args.beam_runner,
            ingest_workers(args),
            project=args.project,
            region=args.region,
            temp_location=args.temp_location,
            image=args.image,
            flink_master=args.flink_master,
            spark_master=args.spark_master,
            machine_type=args.beam_machine_type,
            max_workers=args.beam_max_workers,
        ),
    )
    return bind_resources(pipeline, task_resources(args))


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
    _bind_ingest_resources(spec, task_resources(args))
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        json.dump(spec, f, indent=1, sort_keys=True)
    return spec


def _bind_ingest_resources(spec: dict, resources: Dict[str, TaskResources]) -> None:
    """The ingest's container resources: TFX's step builder drops a FileBasedExampleGen's platform config (it
    builds the driver hook and the executor container itself), so they are set on the compiled spec."""
    from google.protobuf import json_format

    from pipeline.data_nodes import VIDEO_EXAMPLE_GEN_ID

    task = spec["root"]["dag"]["tasks"][VIDEO_EXAMPLE_GEN_ID]
    label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
    container = spec["deploymentSpec"]["executors"][label]["container"]
    container["resources"] = json_format.MessageToDict(resources[VIDEO_EXAMPLE_GEN_ID].resource_spec())


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
    from components.video_example_gen import spans

    values = {}
    for pair in args.param:
        name, _, value = pair.partition("=")
        if name == SPAN_PATTERN_PARAM:
            name, value = "input_config", spans.input_config_json(value)
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

    parser.add_argument("--pipeline-name", default=component_ids.PIPELINE_NAME)
    parser.add_argument("--pipeline-root", default=defaults.KUBEFLOW_PIPELINE_ROOT, help="object storage root")
    parser.add_argument("--image", default=defaults.PIPELINE_IMAGE, help="the pipeline image (infra/Dockerfile)")
    parser.add_argument("--schema-path", default=defaults.IMAGE_SCHEMA_PATH, help="the curated schema inside the image")
    parser.add_argument("--serving-dir", help="model base paths of pushed models; default PIPELINE_ROOT/serving_models")
    parser.add_argument("--data-root", default=defaults.KUBEFLOW_DATA_ROOT, help="default of the data_root parameter")
    parser.add_argument("--layout", default=LAYOUT_AUTO, choices=(LAYOUT_AUTO,) + LAYOUTS)
    flags.add_span_pattern_flag(parser)
    parser.add_argument("--backbones", default=",".join(defaults.KUBEFLOW_BACKBONES))
    parser.add_argument(
        "--ensemble", help="backbones to ensemble; default: every backbone when there are two or more; '' for none"
    )
    parser.add_argument("--weights", help="backbone weights: imagenet or a weights file in the image")
    parser.add_argument("--epochs", type=int, default=defaults.LOCAL_EPOCHS, help="default of the epochs parameter")
    parser.add_argument(
        "--no-warm-start",
        dest="warm_start",
        action="store_false",
        help="default of the warm_start parameter: 0 (every Trainer starts fresh) instead of 1",
    )
    parser.add_argument("--tuner-trials", type=int, default=defaults.KUBEFLOW_TUNER_TRIALS)
    flags.add_blessing_flags(parser)
    parser.add_argument(
        "--beam-runner", default="direct", choices=beam_presets.BEAM_RUNNERS, help="Beam preset, see beam_args"
    )
    parser.add_argument(
        "--direct-num-workers", type=int, default=0, help="direct: processes (0: one per CPU of --ingest-cpus)"
    )
    parser.add_argument("--project", help="dataflow: GCP project")
    parser.add_argument("--region", help="dataflow: GCP region")
    parser.add_argument("--temp-location", help="dataflow: gs:// staging folder")
    parser.add_argument("--flink-master", help="flink: HOST:PORT of the job manager")
    parser.add_argument("--spark-master", help="spark: spark://HOST:PORT")
    parser.add_argument("--beam-machine-type", help="dataflow: worker machine type, e.g. n1-standard-8")
    parser.add_argument("--beam-max-workers", type=int, help="dataflow: most workers; flink: parallelism")
    _add_resource_flags(parser)


def _add_resource_flags(parser: argparse.ArgumentParser) -> None:
    """Resources of the Kubeflow tasks. The defaults fit common GPU node shapes once the kubelet's reserve is
    taken (an 8-vCPU node allocates about 7.9 CPUs): each training task one T4 with 7 CPUs to decode and
    augment its input and 32 GB (an n1-highmem-8 with a T4); the ingest, whose face detection is CPU-bound,
    7 CPUs and 16 GB (an n1-standard-8)."""
    parser.add_argument("--trainer-gpus", type=int, default=1, help="GPUs of each Tuner, Trainer and EnsembleTrainer")
    parser.add_argument(
        "--trainer-gpu-type", default="nvidia-tesla-t4", help="accelerator type as the cluster names it"
    )
    parser.add_argument("--trainer-cpus", type=float, default=7.0, help="CPUs of each training task")
    parser.add_argument("--trainer-memory", default="32G", help="memory of each training task: 32G, 30Gi...")
    parser.add_argument("--ingest-cpus", type=float, default=7.0, help="CPUs of the VideoExampleGen task")
    parser.add_argument("--ingest-memory", default="16G", help="memory of the VideoExampleGen task")


def _add_kfp_client_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--endpoint", help="KFP API endpoint (or KFP_ENDPOINT)")
    parser.add_argument("--token", help="bearer token (or KFP_TOKEN); never stored in the pipeline")
    parser.add_argument("--namespace", help="Kubeflow profile namespace")
    parser.add_argument("--experiment", default=component_ids.PIPELINE_NAME)
    parser.add_argument("--run-name")
    parser.add_argument("--package", help="a compiled pipeline JSON to use instead of compiling now")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        help=f"NAME=VALUE, NAME in {[*RUNTIME_PARAMETERS, SPAN_PATTERN_PARAM]} (span_pattern sets input_config)",
    )
    parser.add_argument("--no-cache", action="store_true", help="disable caching for the run")
