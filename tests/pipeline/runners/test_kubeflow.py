"""Kubeflow: `compile` writes a KFP PipelineSpec with every component and runtime parameter; `schedule` and
`submit` send the expected v2beta1 REST calls.

There is no cluster here: the REST calls go to a recording stand-in on loopback
that answers like the KFP API server's v2beta1 endpoints and keeps what it got.
It proves the requests the client sends, not that a cluster would run them.
"""

import json
from http.server import BaseHTTPRequestHandler

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

import pipeline_runner
from pipeline.runners import kubeflow
from tests.helpers import loopback_http_server

BACKBONES = "meso4,mesoinception4"
COMPILE_FLAGS = ["--image", "registry.example/deepfake-pipeline:1.2", "--pipeline-root", "gs://bucket/root"]
EXPECTED_TASKS = {
    "VideoExampleGen",
    "ImportSchemaGen",
    "StatisticsGen",
    "ExampleValidator",
    "AnomalyGate",
    "EnsembleTrainer",
    *(f"{kind}.{name}" for kind in ("Tuner", "Trainer") for name in BACKBONES.split(",")),
    *(f"{kind}.{name}" for kind in ("Evaluator", "Pusher") for name in BACKBONES.split(",") + ["ensemble"]),
}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    output = tmp_path_factory.mktemp("kfp") / "pipeline.json"
    assert pipeline_runner.main(["compile", "--output", str(output), "--backbones", BACKBONES, *COMPILE_FLAGS]) == 0
    return json.loads(output.read_text())


def test_compile_writes_a_pipeline_spec_with_every_component_and_runtime_parameter(compiled):
    spec = json_format.ParseDict(compiled, pipeline_spec_pb2.PipelineSpec())
    assert spec.pipeline_info.name == "deepfake-detection" and spec.default_pipeline_root == "gs://bucket/root"
    tasks = set(spec.root.dag.tasks)
    assert EXPECTED_TASKS <= tasks
    assert {t for t in tasks if t.startswith("LatestBlessedModel.")}, "each model has a baseline resolver"
    assert set(spec.root.input_definitions.parameters) == set(kubeflow.RUNTIME_PARAMETERS)
    bound = {
        (task, key): value.component_input_parameter
        for task, task_spec in spec.root.dag.tasks.items()
        for key, value in task_spec.inputs.parameters.items()
        if value.component_input_parameter
    }
    assert bound[("VideoExampleGen", "input_base")] == "data_root"
    assert bound[("VideoExampleGen", "input_config")] == "input_config"
    assert bound[("Trainer.meso4", "epochs")] == "epochs" and bound[("Tuner.meso4", "tuner_trials")] == "tuner_trials"
    assert bound[("Trainer.meso4", "warm_start")] == "warm_start"
    base_model = spec.root.dag.tasks["Trainer.meso4"].inputs.artifacts["base_model"].task_output_artifact
    assert base_model.producer_task == "LatestBlessedModel.meso4-model-resolver", "warm start from the baseline"
    assert bound[("Evaluator.ensemble", "min_auc")] == "min_auc"
    assert bound[("Evaluator.meso4", "max_auc_drop")] == "max_auc_drop"
    executors = json.dumps(compiled["deploymentSpec"])
    assert "registry.example/deepfake-pipeline:1.2" in executors


def test_the_ingest_resolves_the_newest_span_with_tfxs_driver_before_the_cache_check(compiled):
    assert compiled["root"]["inputDefinitions"]["parameters"]["input_config"]["type"] == "STRING"
    label = compiled["components"][compiled["root"]["dag"]["tasks"]["VideoExampleGen"]["componentRef"]["name"]]
    container = compiled["deploymentSpec"]["executors"][label["executorLabel"]]["container"]
    hook = container["lifecycle"]["preCacheCheck"]
    assert hook["command"][-1] == "tfx.orchestration.kubeflow.v2.file_based_example_gen.driver"
    assert "components.video_example_gen.executor.Executor" in container["args"]


def _task_resources(compiled):
    """{task name: its container's resources} of the compiled spec."""
    executors = compiled["deploymentSpec"]["executors"]
    found = {}
    for task, task_spec in compiled["root"]["dag"]["tasks"].items():
        label = compiled["components"][task_spec["componentRef"]["name"]]["executorLabel"]
        found[task] = executors[label].get("container", {}).get("resources")
    return found


TRAINING_TASKS = {t for t in EXPECTED_TASKS if t.split(".")[0] in ("Trainer", "Tuner", "EnsembleTrainer")}


def test_training_tasks_request_a_gpu_cpus_and_memory_by_default(compiled):
    resources = _task_resources(compiled)
    assert len(TRAINING_TASKS) == 5
    for task in TRAINING_TASKS:
        assert resources[task] == {
            "accelerator": {"type": "nvidia-tesla-t4", "count": "1"},
            "cpuLimit": 7.0,
            "cpuRequest": 7.0,
            "memoryLimit": 32.0,
            "memoryRequest": 32.0,
        }, task
    assert resources["VideoExampleGen"] == {
        "cpuLimit": 7.0,
        "cpuRequest": 7.0,
        "memoryLimit": 16.0,
        "memoryRequest": 16.0,
    }
    others = {task: r for task, r in resources.items() if task not in TRAINING_TASKS | {"VideoExampleGen"} and r}
    assert not others, "evaluation, validation and pushing run on default pods"
    args = json.dumps(compiled["deploymentSpec"]["executors"])
    assert "--direct_num_workers=7" in args, "the ingest's Beam workers match the CPUs its pod requests"


def test_compile_flags_set_the_training_resources(tmp_path):
    output = tmp_path / "pipeline.json"
    flags = ["--trainer-gpus", "2", "--trainer-gpu-type", "nvidia-tesla-a100", "--trainer-memory", "30Gi"]
    flags += ["--trainer-cpus", "12", "--ingest-cpus", "3", "--ingest-memory", "8G"]
    assert pipeline_runner.main(["compile", "--output", str(output), "--backbones", "meso4", *flags]) == 0
    resources = _task_resources(json.loads(output.read_text()))
    for task in ("Trainer.meso4", "Tuner.meso4"):
        assert resources[task]["accelerator"] == {"type": "nvidia-tesla-a100", "count": "2"}
        assert resources[task]["cpuRequest"] == resources[task]["cpuLimit"] == 12.0
        assert resources[task]["memoryRequest"] == pytest.approx(30 * 1024**3 / 1e9)
    assert resources["VideoExampleGen"]["cpuRequest"] == 3.0 and resources["VideoExampleGen"]["memoryLimit"] == 8.0


def test_training_on_cpu_only_requests_no_accelerator(tmp_path):
    output = tmp_path / "pipeline.json"
    assert (
        pipeline_runner.main(["compile", "--output", str(output), "--backbones", "meso4", "--trainer-gpus", "0"]) == 0
    )
    resources = _task_resources(json.loads(output.read_text()))
    assert "accelerator" not in resources["Trainer.meso4"] and resources["Trainer.meso4"]["cpuRequest"] == 7.0


@pytest.mark.parametrize(
    "quantity, gigabytes", [("32G", 32.0), ("30Gi", 32.212255), ("512Mi", 0.536871), ("1500M", 1.5), ("2T", 2000.0)]
)
def test_memory_quantities_in_kfps_unit(quantity, gigabytes):
    assert kubeflow.memory_gb(quantity) == pytest.approx(gigabytes)


@pytest.mark.parametrize("quantity", ["32GB", "lots", "-1G", ""])
def test_a_bad_memory_quantity_is_refused(quantity):
    with pytest.raises(ValueError, match="Invalid memory quantity"):
        kubeflow.memory_gb(quantity)


def test_compiled_pipeline_holds_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("KFP_TOKEN", "secret-token-value")
    output = tmp_path / "pipeline.json"
    pipeline_runner.main(["compile", "--output", str(output), *COMPILE_FLAGS])
    assert "secret-token-value" not in output.read_text()


class RecordingKfpApi(BaseHTTPRequestHandler):
    """Answers the v2beta1 calls `kfp.Client` makes for experiments, runs and recurring runs, and records them."""

    calls: list = []

    def log_message(self, *args):
        pass

    def _answer(self, payload):
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self.calls.append(("GET", self.path, None, self.headers.get("Authorization")))
        if self.path.startswith("/apis/v2beta1/experiments/"):
            self._answer({"experiment_id": self.path.rsplit("/", 1)[1], "display_name": "deepfake-detection"})
        else:
            self._answer({})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self.calls.append(("POST", self.path, body, self.headers.get("Authorization")))
        if self.path == "/apis/v2beta1/experiments":
            self._answer({"experiment_id": "exp-1", "display_name": body["display_name"]})
        elif self.path == "/apis/v2beta1/recurringruns":
            self._answer({"recurring_run_id": "rr-1", **body})
        elif self.path == "/apis/v2beta1/runs":
            self._answer({"run_id": "run-1", **body})
        else:
            self.send_error(404)


@pytest.fixture()
def kfp_api():
    RecordingKfpApi.calls = []
    with loopback_http_server(RecordingKfpApi) as url:
        yield url, RecordingKfpApi.calls


def test_schedule_creates_a_recurring_run_with_cron_pipeline_and_parameters(kfp_api, tmp_path, monkeypatch):
    endpoint, calls = kfp_api
    monkeypatch.setenv("KFP_TOKEN", "token-from-env")
    code = pipeline_runner.main(
        [
            "schedule",
            "--cron",
            "0 3 * * 1",
            "--endpoint",
            endpoint,
            "--param",
            "epochs=30",
            "--param",
            "min_auc=0.8",
            "--param",
            "data_root=gs://bucket/videos",
            "--param",
            "span_pattern={YYYY}-{MM}-{DD}",
            "--backbones",
            BACKBONES,
            *COMPILE_FLAGS,
        ]
    )
    assert code == 0
    [recurring] = [body for method, path, body, _ in calls if (method, path) == ("POST", "/apis/v2beta1/recurringruns")]
    assert recurring["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1"
    assert (
        recurring["experiment_id"] == "exp-1"
        and recurring["max_concurrency"] == "1"
        or recurring["max_concurrency"] == 1
    )
    assert recurring["mode"] == "ENABLE" and recurring["no_catchup"] is True
    parameters = recurring["runtime_config"]["parameters"]
    assert json.loads(parameters.pop("input_config"))["splits"] == [{"name": "videos", "pattern": "{YYYY}-{MM}-{DD}"}]
    assert parameters == {"epochs": 30, "min_auc": 0.8, "data_root": "gs://bucket/videos"}
    spec = json_format.ParseDict(recurring["pipeline_spec"], pipeline_spec_pb2.PipelineSpec())
    assert EXPECTED_TASKS - {"Tuner.mesoinception4", "Trainer.mesoinception4"} <= set(spec.root.dag.tasks)
    assert all(auth == "Bearer token-from-env" for *_, auth in calls)


def test_submit_starts_one_run(kfp_api, tmp_path):
    endpoint, calls = kfp_api
    assert pipeline_runner.main(["submit", "--endpoint", endpoint, "--param", "tuner_trials=0", *COMPILE_FLAGS]) == 0
    [run] = [body for method, path, body, _ in calls if (method, path) == ("POST", "/apis/v2beta1/runs")]
    assert run["runtime_config"]["parameters"] == {"tuner_trials": 0}
    assert "VideoExampleGen" in run["pipeline_spec"]["root"]["dag"]["tasks"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["schedule", "--cron", "every monday", "--endpoint", "http://127.0.0.1:9"], "Invalid cron"),
        (["submit", "--endpoint", "http://127.0.0.1:9", "--param", "lr=1"], "NAME=VALUE"),
        (["submit", "--endpoint", "http://127.0.0.1:9", "--param", "epochs=many"], "epochs=many"),
    ],
)
def test_bad_kubeflow_arguments_are_refused_with_the_reason(argv, message, monkeypatch):
    monkeypatch.delenv("KFP_ENDPOINT", raising=False)
    with pytest.raises(SystemExit, match=message):
        pipeline_runner.main(argv)


def test_missing_endpoint_is_refused(monkeypatch):
    monkeypatch.delenv("KFP_ENDPOINT", raising=False)
    with pytest.raises(SystemExit, match="KFP_ENDPOINT"):
        pipeline_runner.main(["submit"])
