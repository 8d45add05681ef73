"""Edge exports: each one made, run through the edge runtime, agreeing with the SavedModel within its bound, and
removed with its reason when it breaks one."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from deepfake_detection import contract, edge_runtime
from deepfake_detection.models import data, edge, export
from deepfake_detection.models.base import ModelSettings
from deepfake_detection.models.registry import get_backbone
from tests.helpers import face_crops, spread_outputs, write_face_records

pytest.importorskip("tf2onnx")
pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A Meso-4 at 64 px with spread scores, its SavedModel and its edge exports checked on 12 faces."""
    folder = tmp_path_factory.mktemp("edge")
    keras.utils.set_random_seed(0)
    model = get_backbone("meso4").build(ModelSettings(input_size=64), {})
    crops = face_crops(12)
    spread_outputs(model, data.decode_images(tf.constant(crops)))
    faces = str(folder / "faces.gz")
    write_face_records(faces, crops)
    export_dir = str(folder / export.SERVING_DIR)
    export.export_saved_model(model, export_dir)
    report = edge.write_edge_exports(model, export_dir, [faces], [faces], contract.TEST_SPLIT)
    return model, export_dir, crops, report


def test_every_export_is_made_checked_and_agrees_with_the_saved_model(exported):
    model, export_dir, crops, report = exported
    folder = edge_runtime.edge_folder(export_dir)
    serve = tf.saved_model.load(export_dir).signatures[contract.SERVING_DEFAULT]
    reference = serve(images=tf.constant(crops))[contract.OUTPUT_KEY].numpy()
    assert reference.std() > 0.05  # spread scores: agreement is not two constants
    pixels = data.decode_images(tf.constant(crops)).numpy()
    for runtime, name in contract.EDGE_FILES.items():
        row = report["exports"][runtime]
        assert row["status"] == edge.PUSHED, row
        assert os.path.getsize(os.path.join(folder, name)) == row["size_bytes"] > 0
        scores = edge_runtime.EdgeRunner(folder, runtime).probabilities(pixels)
        assert np.max(np.abs(scores - reference)) <= edge.MAX_DIFFERENCE[runtime]
        assert row["max_abs_difference"] == pytest.approx(np.max(np.abs(scores - reference)), abs=1e-5)
        assert row["latency_ms_per_face"] > 0
    assert report["savedmodel"]["test_auc"] is not None
    assert report["checked_on"] == {"split": contract.TEST_SPLIT, "faces": 12, "fake": 6}
    with open(os.path.join(folder, contract.EDGE_CONTRACT_FILE)) as f:
        stated = json.load(f)
    assert (stated["size"], stated["colour_order"]) == (data.CROP_SIZE, "RGB")
    assert stated["runtimes"][contract.RUNTIME_TFLITE_INT8]["input_dtype"] == "uint8"


def test_the_int8_export_takes_uint8_pixels_and_the_others_floats(exported):
    from ai_edge_litert.interpreter import Interpreter

    folder = edge_runtime.edge_folder(exported[1])
    for runtime, dtype in ((contract.RUNTIME_TFLITE_INT8, np.uint8), (contract.RUNTIME_TFLITE_FP16, np.float32)):
        interpreter = Interpreter(model_path=os.path.join(folder, contract.EDGE_FILES[runtime]))
        assert interpreter.get_input_details()[0]["dtype"] == dtype
        assert list(interpreter.get_input_details()[0]["shape_signature"]) == [-1, data.CROP_SIZE, data.CROP_SIZE, 3]


def test_an_export_over_its_bound_is_removed_and_the_runtime_says_why(exported, monkeypatch, tmp_path):
    model, export_dir, _, _ = exported
    copy = str(tmp_path / export.SERVING_DIR)
    tf.io.gfile.makedirs(copy)
    for name in tf.io.gfile.listdir(export_dir):
        if name.rstrip("/") != contract.EDGE_DIR:
            _copy_tree(os.path.join(export_dir, name.rstrip("/")), os.path.join(copy, name.rstrip("/")))
    monkeypatch.setitem(edge.MAX_DIFFERENCE, contract.RUNTIME_TFLITE_INT8, 0.0)
    faces = str(tmp_path / "faces.gz")
    write_face_records(faces, face_crops(4))
    report = edge.write_edge_exports(model, copy, [faces], [faces], contract.EVAL_SPLIT)
    row = report["exports"][contract.RUNTIME_TFLITE_INT8]
    assert row["status"] == edge.REJECTED and "over the bound 0.0" in row["reason"]
    folder = edge_runtime.edge_folder(copy)
    assert not os.path.exists(os.path.join(folder, contract.EDGE_FILES[contract.RUNTIME_TFLITE_INT8]))
    with pytest.raises(edge_runtime.MissingExportError, match="over the bound"):
        edge_runtime.EdgeRunner(folder, contract.RUNTIME_TFLITE_INT8)
    assert any("rejected" in line for line in edge.report_lines(report))


def _copy_tree(source: str, target: str) -> None:
    if tf.io.gfile.isdir(source):
        tf.io.gfile.makedirs(target)
        for name in tf.io.gfile.listdir(source):
            _copy_tree(os.path.join(source, name.rstrip("/")), os.path.join(target, name.rstrip("/")))
    else:
        tf.io.gfile.copy(source, target)


def test_the_model_card_and_the_run_summary_carry_each_exports_figures(exported):
    from deepfake_detection.evaluation import model_card

    report = exported[3]
    card = model_card.build_card(
        "meso4", 3, {}, {"datasets": [], "fake_source": "dataset", "splits": {}}, {}, None, None, True
    )
    card["edge_exports"] = report
    text = model_card.render_markdown(card)
    assert "## Edge exports" in text
    for runtime, row in report["exports"].items():
        assert f"- {runtime}: pushed, {row['size_bytes']} bytes" in text
    lines = edge.report_lines(report)
    assert len(lines) == 1 + len(contract.RUNTIMES) and "test AUC" in lines[-1]


def test_a_model_without_edge_exports_says_why_in_the_card_and_the_summary(tmp_path):
    from deepfake_detection.evaluation import model_card

    report = edge.write_not_made(str(tmp_path), "a temporal model scores clips")
    assert edge_runtime.read_json(edge_runtime.edge_folder(str(tmp_path)), contract.EDGE_REPORT_FILE) == report
    lines = edge.report_lines(report)
    assert len(lines) == len(contract.EDGE_FILES) and all("not made: a temporal model" in line for line in lines)
    data_summary = {"datasets": [], "fake_source": "dataset", "splits": {}}
    card = {**model_card.build_card("resnext_lstm", 1, {}, data_summary, {}, None, None, True), "edge_exports": report}
    assert "- tflite-int8: not made (a temporal model scores clips)" in model_card.render_markdown(card)
    with pytest.raises(edge_runtime.MissingExportError, match="a temporal model"):
        edge_runtime.EdgeRunner(edge_runtime.edge_folder(str(tmp_path)), contract.RUNTIME_ONNX)


def test_the_main_jobs_backbone_converts_and_agrees(tmp_path):
    """blend_resnet's variables made the TFLite converter abort the process until the function was frozen."""
    keras.utils.set_random_seed(0)
    model = get_backbone("blend_resnet").build(ModelSettings(input_size=64), {})
    faces = str(tmp_path / "faces.gz")
    write_face_records(faces, face_crops(4))
    export_dir = str(tmp_path / export.SERVING_DIR)
    export.export_saved_model(model, export_dir)
    report = edge.write_edge_exports(model, export_dir, [faces], [faces], contract.TEST_SPLIT)
    assert {runtime: row["status"] for runtime, row in report["exports"].items()} == dict.fromkeys(
        contract.EDGE_FILES, edge.PUSHED
    )
