"""A face model's edge exports run without TensorFlow: TFLite through ai-edge-litert, ONNX through ONNX Runtime.

An edge export takes decoded pixels, not encoded bytes (image decoding is no
TFLite builtin), so each export folder states its input contract in
`input_contract.json` (size, scaling, colour order, layout, per-runtime input
type). The pipeline's check (`models/edge.py`) and the clients
(`serving/client/runtimes.py`) run the exports through this one module, so the
figures in the model card are those of the code a user runs. Install the
`edge` extra (`pip install .[edge]`) for these runtimes alone.
"""

import json
import os
from typing import Callable, Optional

import numpy as np

from deepfake_detection import contract


def edge_folder(version_dir: str) -> str:
    """Where a SavedModel version keeps its edge exports."""
    return os.path.join(version_dir, contract.EDGE_DIR)


def read_json(folder: str, name: str) -> Optional[dict]:
    """The folder's input contract or check report (`contract.EDGE_CONTRACT_FILE`, `EDGE_REPORT_FILE`); None
    when it has none."""
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class MissingExportError(ValueError):
    """The version has no export for the runtime asked for; the message says why (from the check's report)."""


Runner = Callable[[np.ndarray], np.ndarray]


def _tflite(path: str, threads: int, quantised_input: bool) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads or None)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = source["quantization"]
    shape = [0]

    def run(pixels: np.ndarray) -> np.ndarray:
        if shape[0] != len(pixels):
            interpreter.resize_tensor_input(source["index"], list(pixels.shape))
            interpreter.allocate_tensors()
            shape[0] = len(pixels)
        if quantised_input:
            info = np.iinfo(source["dtype"])
            pixels = np.clip(np.round(pixels / scale + zero_point), info.min, info.max)
        interpreter.set_tensor(source["index"], pixels.astype(source["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(target["index"]).reshape(-1)

    return run


def _onnx(path: str, threads: int) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda pixels: session.run(None, {name: pixels.astype(np.float32)})[0].reshape(-1)


class EdgeRunner:
    """One edge export of a version, loaded: raw P(fake) for a batch of pixels in the folder's input contract."""

    def __init__(self, folder: str, runtime: str, threads: int = 0):
        if runtime not in contract.EDGE_FILES:
            raise ValueError(f"Invalid edge runtime {runtime!r}: expected one of {sorted(contract.EDGE_FILES)}")
        path = os.path.join(folder, contract.EDGE_FILES[runtime])
        if not os.path.exists(path):
            raise MissingExportError(f"No {runtime} export in {folder}: {missing_reason(folder, runtime)}")
        self.input_contract = read_json(folder, contract.EDGE_CONTRACT_FILE)
        if self.input_contract is None:
            raise MissingExportError(f"No input contract ({contract.EDGE_CONTRACT_FILE}) in {folder}")
        self.runtime = runtime
        quantised = self.input_contract["runtimes"][runtime]["input_dtype"] == "uint8"
        self._run = _onnx(path, threads) if runtime == contract.RUNTIME_ONNX else _tflite(path, threads, quantised)

    @property
    def size(self) -> int:
        return int(self.input_contract["size"])

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """float pixels [N, size, size, 3], RGB, 0-255 (the contract's) -> raw P(fake) [N]."""
        if not len(pixels):
            return np.zeros(0, np.float32)
        return np.asarray(self._run(np.asarray(pixels, np.float32)), np.float32)


def missing_reason(folder: str, runtime: str) -> str:
    """Why a version has no export for `runtime`: the check's words, or that it predates edge exports."""
    report = read_json(folder, contract.EDGE_REPORT_FILE)
    if report is None:
        return "this version was exported without edge exports (before they existed): re-train it"
    return report.get("exports", {}).get(runtime, {}).get("reason", "not in the check's report")
