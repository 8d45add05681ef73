"""With no model name, the service and the command line use the model the model server (or the serving folder) has."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from serving.client.detect import pushed_model_dir
from serving.model_server import model_config
from serving.model_server import server as local_server
from serving.service import served_model
from tests.helpers import free_port, push

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


@pytest.mark.parametrize(
    "names, chosen",
    [(["blend_resnet"], "blend_resnet"), (["meso4", "ensemble", "blend_resnet"], "ensemble")],
)
def test_the_only_model_or_the_ensemble_is_chosen(names, chosen):
    assert served_model.choose(names, "here") == chosen


def test_an_ambiguous_or_empty_choice_names_the_choices():
    with pytest.raises(served_model.ModelChoiceError, match=r"\['blend_resnet', 'meso4'\].*name one"):
        served_model.choose(["meso4", "blend_resnet"], "the model server at x")
    with pytest.raises(served_model.ModelChoiceError, match="has no model"):
        served_model.choose([], "the model server at x")


def test_every_backbone_and_the_ensemble_are_candidates():
    from deepfake_detection.models.registry import BACKBONES

    assert set(served_model.candidate_names()) == set(BACKBONES) | {"ensemble"}


def test_the_served_candidates_are_those_the_model_server_knows(model_server):
    names = served_model.served_names(model_server.grpc_address, ["missing", "faces", "pinned", "meso4"])
    assert names == ["faces", "pinned"]


def test_a_model_server_that_never_answers_is_an_error_naming_it():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(served_model.ModelChoiceError, match=f"{address} did not answer"):
        served_model.served_names(address, ["faces"], wait_s=0.5)


def test_the_config_file_names_the_choices(tmp_path):
    models = [model_config.ServingModel(name, str(tmp_path / name)) for name in ("meso4", "ensemble")]
    paths = model_config.write_serving_configs(str(tmp_path / "config"), models)
    config_file = paths[model_config.MODELS_CONFIG_FILE]
    assert served_model.names_in_config(config_file) == ["meso4", "ensemble"]
    assert served_model.resolve("unused:0", config_file) == "ensemble"


def test_local_detection_takes_the_latest_version_of_the_only_pushed_model(tmp_path):
    for name, version in (("meso4", 3), ("meso4", 12)):
        os.makedirs(tmp_path / name / str(version))
        (tmp_path / name / str(version) / "saved_model.pb").write_bytes(b"")
    assert pushed_model_dir(str(tmp_path)) == str(tmp_path / "meso4" / "12")
    os.makedirs(tmp_path / "blend_resnet" / "1")
    (tmp_path / "blend_resnet" / "1" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(served_model.ModelChoiceError, match=r"\['blend_resnet', 'meso4'\]"):
        pushed_model_dir(str(tmp_path))


def test_the_service_without_a_model_name_is_ready_on_the_only_served_model(exported_models, tmp_path):
    """What a user does after `make run` and `pipeline_runner.py serve`: start the service with no model name."""
    push(exported_models[1], str(tmp_path / "serving" / "meso4"), 1)
    grpc_port, service_port = free_port(), free_port()
    args = ["--port", str(grpc_port), "--model_name", "meso4", "--model_base_path", str(tmp_path / "serving" / "meso4")]
    model_server = local_server.LocalModelServer(local_server.parse_args(args))
    model_server.start()
    command = [
        *(sys.executable, "-m", "pipeline_runner", "service", "--model-server", f"127.0.0.1:{grpc_port}"),
        *("--port", str(service_port), "--history-url", f"sqlite:///{tmp_path}/history.sqlite"),
    ]
    service = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, answer = time.monotonic() + 180, None
        while time.monotonic() < deadline and service.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{service_port}/readyz", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer is not None, service.stderr.read()[-3000:] if service.poll() is not None else "no answer"
        assert answer.status_code == 200 and answer.json()["model_name"] == "meso4"
    finally:
        service.terminate()
        service.wait(timeout=30)
        model_server.stop()


def test_the_service_stops_naming_the_choices_when_it_cannot_choose(tmp_path):
    import pipeline_runner

    models = [model_config.ServingModel(name, str(tmp_path / name)) for name in ("meso4", "blend_resnet")]
    config_file = model_config.write_serving_configs(str(tmp_path), models)[model_config.MODELS_CONFIG_FILE]
    with pytest.raises(SystemExit, match=r"No --model-name.*\['blend_resnet', 'meso4'\]"):
        pipeline_runner.main(["service", "--model-server", "127.0.0.1:1", "--model-config-file", config_file])
