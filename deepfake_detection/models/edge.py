"""Edge exports of a face classifier, each checked against the SavedModel before it ships.

Beside a face model's SavedModel (in its `edge/` folder, which the Pusher
copies with it) go `model_fp16.tflite` (float16 weights), `model_int8.tflite`
(full-integer, calibrated on training-split faces, uint8 pixels in) and
`model.onnx` (tf2onnx), all of the Keras classifier body on decoded pixels:
image decoding is no TFLite builtin, so `input_contract.json` states what the
SavedModel's own decoding (`data.decode_images`) hands the model: RGB,
NHWC, `data.CROP_SIZE` square, bilinear resize, float 0-255 (the backbone's
normalisation is inside the model). Each export then scores the test split's
faces through `edge_runtime` (the code a user runs) and is kept only when its
largest |difference| from the SavedModel's probability and its AUC drop stay
within the bounds below; `edge_report.json` records size, per-face latency,
test AUC and difference of each, and why an export was not made or not kept.
"""

import json
import math
import os
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from deepfake_detection import contract, edge_runtime
from deepfake_detection.evaluation import video_scores
from deepfake_detection.models import data

PIXELS_INPUT = "pixels"
# An export ships only within both bounds of the SavedModel on the check faces: the largest |difference| of a
# face's P(fake), and the test AUC's drop. Float16 weights and ONNX compute the same function; full-integer
# quantisation moves probabilities by a few hundredths, and its bound on the AUC is the goal.
MAX_DIFFERENCE = {contract.RUNTIME_TFLITE_FP16: 0.01, contract.RUNTIME_TFLITE_INT8: 0.1, contract.RUNTIME_ONNX: 0.001}
MAX_AUC_DROP = {contract.RUNTIME_TFLITE_FP16: 0.005, contract.RUNTIME_TFLITE_INT8: 0.01, contract.RUNTIME_ONNX: 0.005}
# Under this many faces of each class an AUC moves by more than the bounds when one pair swaps: only the
# difference bound decides.
MIN_FACES_FOR_AUC = 50
CALIBRATION_FACES = 128
CHECK_FACES = 256
LATENCY_RUNS = 20
BATCH = 32
# The splits an export is checked on, the first that holds faces: a run without a test split uses the eval split.
CHECK_SPLITS = (contract.TEST_SPLIT, contract.EVAL_SPLIT)
PUSHED, REJECTED, NOT_MADE = "pushed", "rejected", "not made"


def pixel_function(model: tf.keras.Model, size: int = data.CROP_SIZE) -> tf.types.experimental.GenericFunction:
    """The classifier on a batch of pixels ([N, size, size, 3] float32, 0-255, RGB) -> P(fake) [N]."""

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name=PIXELS_INPUT)])
    def classify(pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
        return {contract.OUTPUT_KEY: tf.reshape(tf.cast(model(pixels, training=False), tf.float32), [-1])}

    return classify


def to_tflite(function: Callable, calibration: Optional[np.ndarray] = None) -> bytes:
    """Float16 weights without `calibration`; with it, full-integer (uint8 pixels in, float P(fake) out).

    The function's variables are frozen into constants first: converting them
    as variables aborts the process (an LLVM error, "missing attribute 'value'")
    on some backbones, blend_resnet among them.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is None:
        converter.target_spec.supported_types = [tf.float16]
    else:
        converter.representative_dataset = lambda: ([calibration[i : i + 1]] for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    return converter.convert()


def to_onnx(function: Callable) -> bytes:
    import tf2onnx

    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=17)
    return proto.SerializeToString()


def input_contract(size: int) -> dict:
    """What every edge export of the folder takes and returns."""
    return {
        "size": size,
        "layout": "NHWC, any batch size",
        "colour_order": "RGB",
        "scaling": "pixels 0-255 unnormalised (the backbone's normalisation is inside the model)",
        "resize": f"the face crop resized to {size}x{size}, bilinear with half-pixel centres, no antialiasing",
        "output": f"{contract.OUTPUT_KEY} [N]: the raw P(fake); the version's operating point calibrates it",
        "runtimes": {
            contract.RUNTIME_TFLITE_FP16: {"input_dtype": "float32"},
            contract.RUNTIME_TFLITE_INT8: {"input_dtype": "uint8", "note": "round the pixels to integers"},
            contract.RUNTIME_ONNX: {"input_dtype": "float32", "input_name": PIXELS_INPUT},
        },
    }


def read_faces(file_patterns: Sequence[str], limit: int) -> Tuple[List[bytes], np.ndarray]:
    """Up to `limit` faces (encoded bytes) and their labels, in file order."""
    parsed = data.records(list(file_patterns)).map(lambda s: tf.io.parse_single_example(s, data.FACE_FEATURES))
    faces = list(parsed.take(limit).as_numpy_iterator())
    return [f[contract.IMAGE_KEY] for f in faces], np.array([f[contract.LABEL_KEY] for f in faces], np.int64)


def _decoded(encoded: Sequence[bytes]) -> np.ndarray:
    return data.decode_images(tf.constant(list(encoded), tf.string)).numpy()


def _batched(score: Callable[[Sequence[bytes]], np.ndarray], encoded: Sequence[bytes]) -> np.ndarray:
    parts = [np.asarray(score(encoded[i : i + BATCH])).reshape(-1) for i in range(0, len(encoded), BATCH)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _latency_ms(score: Callable[[], object]) -> float:
    """Median wall time of one face, after a warm-up call."""
    score()
    times = []
    for _ in range(LATENCY_RUNS):
        started = time.perf_counter()
        score()
        times.append(time.perf_counter() - started)
    return round(1000 * statistics.median(times), 3)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    value = video_scores.roc_auc(labels, scores)
    return None if math.isnan(value) else round(float(value), 4)


def _folder_size(path: str, skip: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, dirs, files in os.walk(path)
        if not root.startswith(skip)
        for name in files
    )


def _verdict(runtime: str, difference: float, auc: float, reference_auc: float, labels: np.ndarray) -> Tuple[str, str]:
    """(status, reason): pushed within both bounds, else rejected with the bound it broke."""
    if difference > MAX_DIFFERENCE[runtime]:
        return REJECTED, f"largest |difference| {difference:.4f} over the bound {MAX_DIFFERENCE[runtime]}"
    enough = min(int(labels.sum()), int(len(labels) - labels.sum())) >= MIN_FACES_FOR_AUC
    if enough and auc is not None and reference_auc is not None and reference_auc - auc > MAX_AUC_DROP[runtime]:
        return (
            REJECTED,
            f"test AUC {auc} is {reference_auc - auc:.4f} under the SavedModel's, over {MAX_AUC_DROP[runtime]}",
        )
    return PUSHED, f"within {MAX_DIFFERENCE[runtime]} of the SavedModel on every check face"


def _convert(runtime: str, function: Callable, calibration: np.ndarray) -> bytes:
    if runtime == contract.RUNTIME_ONNX:
        return to_onnx(function)
    return to_tflite(function, calibration if runtime == contract.RUNTIME_TFLITE_INT8 else None)


def write_edge_exports(
    model: tf.keras.Model,
    export_dir: str,
    calibration_files: Sequence[str],
    check_files: Sequence[str],
    check_split: str,
) -> dict:
    """Writes, checks and keeps or removes each edge export of the SavedModel in `export_dir` (already
    written), with the input contract and the report; returns the report.

    An export that cannot be made (a converter's error) or breaks a bound is
    not left in the folder, and the report says why.
    """
    folder = edge_runtime.edge_folder(export_dir)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, contract.EDGE_CONTRACT_FILE), "w") as f:
        json.dump(input_contract(data.CROP_SIZE), f, indent=1, sort_keys=True)
    calibration = _decoded(read_faces(calibration_files, CALIBRATION_FACES)[0])
    encoded, labels = read_faces(check_files, CHECK_FACES)
    serve = tf.saved_model.load(export_dir).signatures[contract.SERVING_DEFAULT]

    def saved_model_scores(batch: Sequence[bytes]) -> np.ndarray:
        return serve(**{contract.IMAGES_INPUT: tf.constant(list(batch), tf.string)})[contract.OUTPUT_KEY].numpy()

    reference = _batched(saved_model_scores, encoded)
    reference_auc = _auc(labels, reference)
    report = {
        "checked_on": {"split": check_split, "faces": len(encoded), "fake": int(labels.sum())},
        "calibrated_on": {"split": contract.TRAIN_SPLIT, "faces": len(calibration)},
        "bounds": {"max_abs_difference": MAX_DIFFERENCE, "max_auc_drop": MAX_AUC_DROP},
        "savedmodel": {
            "size_bytes": _folder_size(export_dir, folder),
            "latency_ms_per_face": _latency_ms(lambda: saved_model_scores(encoded[:1])) if encoded else None,
            "test_auc": reference_auc,
        },
        "exports": {},
    }
    function = pixel_function(model)
    for runtime, name in contract.EDGE_FILES.items():
        path = os.path.join(folder, name)
        try:
            blob = _convert(runtime, function, calibration)
        except Exception as e:  # noqa: BLE001 - any converter failure is recorded with its reason, not raised
            report["exports"][runtime] = {"status": NOT_MADE, "reason": f"{type(e).__name__}: {e}"[:500]}
            continue
        with open(path, "wb") as f:
            f.write(blob)
        report["exports"][runtime] = _check(folder, runtime, encoded, labels, reference, reference_auc)
        if report["exports"][runtime]["status"] != PUSHED:
            os.remove(path)
    with open(os.path.join(folder, contract.EDGE_REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    return report


def _check(
    folder: str,
    runtime: str,
    encoded: Sequence[bytes],
    labels: np.ndarray,
    reference: np.ndarray,
    reference_auc: float,
) -> dict:
    """One export scored on the check faces through the runtime a user runs, against the SavedModel."""
    try:
        runner = edge_runtime.EdgeRunner(folder, runtime)
    except ImportError as e:
        return {"status": NOT_MADE, "reason": f"its runtime is not installed (pip install .[edge]): {e}"}
    scores = _batched(lambda batch: runner.probabilities(_decoded(batch)), encoded)
    difference = float(np.max(np.abs(scores - reference))) if len(scores) else 0.0
    auc = _auc(labels, scores)
    status, reason = _verdict(runtime, difference, auc, reference_auc, labels)
    first = _decoded(encoded[:1]) if encoded else None
    return {
        "status": status,
        "reason": reason,
        "file": contract.EDGE_FILES[runtime],
        "size_bytes": os.path.getsize(os.path.join(folder, contract.EDGE_FILES[runtime])),
        "latency_ms_per_face": _latency_ms(lambda: runner.probabilities(first)) if first is not None else None,
        "test_auc": auc,
        "max_abs_difference": round(difference, 6),
    }


def report_lines(report: dict) -> List[str]:
    """The check's figures, one line per runtime, for the run summary and the model card."""
    if "checked_on" not in report:
        return [_why_line(runtime, row) for runtime, row in report["exports"].items()]
    checked = report["checked_on"]
    lines = [f"checked on {checked['faces']} faces of the {checked['split']} split ({checked['fake']} fake)"]
    rows = {contract.RUNTIME_SAVEDMODEL: {"status": "reference", **report["savedmodel"]}, **report["exports"]}
    for runtime, row in rows.items():
        if "size_bytes" not in row:
            lines.append(_why_line(runtime, row))
            continue
        latency = row["latency_ms_per_face"]
        lines.append(
            f"{runtime:<12} {row['status']:<9} {row['size_bytes'] / 1e6:7.2f} MB  "
            f"{'-' if latency is None else f'{latency:.2f}'} ms/face  test AUC {row['test_auc']}  "
            f"max |diff| {row.get('max_abs_difference', 0.0)}" + (f"  ({row['reason']})" if "reason" in row else "")
        )
    return lines


def _why_line(runtime: str, row: dict) -> str:
    return f"{runtime:<12} {row['status']}: {row['reason']}"


def write_checked_exports(
    model: tf.keras.Model, export_dir: str, train_patterns: Sequence[str], split_patterns: Dict[str, List[str]]
) -> dict:
    """`write_edge_exports` calibrated on the training faces and checked on the first split of
    `split_patterns` (test, then eval) that holds files: a run without a test split still checks its exports."""
    split = next((name for name, patterns in split_patterns.items() if _has_files(patterns)), None)
    if split is None:
        raise ValueError(f"No faces to check the edge exports on: none of {split_patterns} matches a file")
    return write_edge_exports(model, export_dir, train_patterns, split_patterns[split], split)


def write_not_made(export_dir: str, reason: str) -> dict:
    """The report of a model that gets no edge exports (a temporal model), so the card and the run summary say
    why instead of staying silent; returns it."""
    folder = edge_runtime.edge_folder(export_dir)
    os.makedirs(folder, exist_ok=True)
    report = {"exports": {runtime: {"status": NOT_MADE, "reason": reason} for runtime in contract.EDGE_FILES}}
    with open(os.path.join(folder, contract.EDGE_REPORT_FILE), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    return report


def _has_files(patterns: Sequence[str]) -> bool:
    return any(tf.io.gfile.glob(pattern) for pattern in patterns)
