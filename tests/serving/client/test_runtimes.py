"""`detect --local --runtime`: each edge export gives the SavedModel's verdict format and, within its bound, its
probabilities, at the version's own operating point; a runtime that cannot run says why."""

import json
import os
import subprocess
import sys

import pytest

from deepfake_detection import contract
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.models import edge
from pipeline_runner import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _detect(capsys, model_dir: str, runtime: str, video: str) -> dict:
    flags = ["--model-dir", model_dir, "--runtime", runtime, "--frames-per-video", "6", "--json"]
    assert main(["detect", "--local", *flags, video]) == 0
    [answer] = json.loads(capsys.readouterr().out)
    return answer


def test_every_runtime_gives_the_saved_models_verdict_at_the_versions_point(edge_model, sample_dataset, capsys):
    video = sorted(r.path for r in read_dataset(sample_dataset))[0]
    reference = _detect(capsys, edge_model, contract.RUNTIME_SAVEDMODEL, video)
    assert reference["faces"] and reference["operating_point_source"] == "model"
    for runtime in contract.EDGE_FILES:
        answer = _detect(capsys, edge_model, runtime, video)
        assert set(answer) == set(reference)
        for key in ("threshold", "real_threshold"):  # the file's float64 point, the signature's float32 one
            assert answer[key] == pytest.approx(reference[key], abs=1e-6) and answer[key] is not None
        assert [f["box"] for f in answer["faces"]] == [f["box"] for f in reference["faces"]]
        for face, expected in zip(answer["faces"], reference["faces"], strict=True):
            assert face["fake_probability"] == pytest.approx(
                expected["fake_probability"], abs=edge.MAX_DIFFERENCE[runtime]
            )
        assert answer["raw_score"] == pytest.approx(reference["raw_score"], abs=edge.MAX_DIFFERENCE[runtime])
        if runtime != contract.RUNTIME_TFLITE_INT8:
            assert answer["verdict"] == reference["verdict"]


def test_a_version_without_edge_exports_and_a_runtime_without_local_say_why(exported_models, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read")
    command = ["detect", "--local", "--model-dir", exported_models[1], "--runtime", contract.RUNTIME_ONNX, str(video)]
    assert main(command) == 2
    assert "exported without edge exports" in capsys.readouterr().err
    assert main(["detect", "--runtime", contract.RUNTIME_ONNX, str(video)]) == 2
    assert "needs --local" in capsys.readouterr().err
    assert main(["detect", "--local", "--runtime", contract.RUNTIME_TFLITE_FP16, "--explain", str(video)]) == 2
    assert "--explain needs --runtime savedmodel" in capsys.readouterr().err


def test_an_edge_runtime_needs_no_tensorflow(edge_model, sample_dataset):
    """What the `edge` extra installs is enough: the verdict comes with TensorFlow and Keras unimportable."""
    video = sorted(r.path for r in read_dataset(sample_dataset))[0]
    script = (
        "import json, sys\n"
        "for name in ('tensorflow', 'keras', 'tf2onnx'): sys.modules[name] = None\n"
        "from serving.client.detect import local_analyser\n"
        f"analyse = local_analyser({edge_model!r}, {{'frames_per_video': 6}}, runtime='tflite-int8')\n"
        f"print(json.dumps(analyse({video!r})))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    status, answer = json.loads(done.stdout.splitlines()[-1])
    assert status == 200 and answer["faces"] and answer["verdict"] in ("fake", "uncertain", "real")
