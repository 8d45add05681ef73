"""MTCNN's three networks as ONNX graphs, built from the weights the `mtcnn` package ships: no TensorFlow.

Kept apart from running them (`mtcnn_onnx.Mtcnn`): this is a one-off
translation of Keras layers (NHWC weights) into ONNX nodes (NCHW), read once
per detector; the detection algorithm does not depend on how its graphs were
made. The weight files are read with joblib, without importing the `mtcnn`
package, which imports TensorFlow.
"""

import importlib.util
import os
from typing import Dict, List, Sequence

import numpy as np

# Stage inputs: PNet takes any size, RNet 24 px and ONet 48 px patches.
RNET_SIDE, ONET_SIDE = 24, 48


def mtcnn_weights() -> Dict[str, List[np.ndarray]]:
    """The Keras weight lists of PNet, RNet and ONet, as the installed `mtcnn` package ships them."""
    import joblib

    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The mtcnn package (its weights) is not installed: pip install mtcnn==1.0.0")
    folder = os.path.join(spec.submodule_search_locations[0], "assets", "weights")
    return {name: joblib.load(os.path.join(folder, f"{name}.lz4")) for name in ("pnet", "rnet", "onet")}


class _GraphBuilder:
    """Appends ONNX nodes for Keras layers (NHWC weights) to an NCHW graph."""

    def __init__(self, weights: Sequence[np.ndarray]):
        self._weights = list(weights)
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"{kind}_{self._count}"

    def _constant(self, array: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self._name("w")
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def _node(self, op: str, inputs: Sequence[str], **attributes) -> str:
        from onnx import helper

        output = self._name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [output], **attributes))
        return output

    def conv(self, x: str) -> str:
        kernel, bias = self._weights.pop(0), self._weights.pop(0)
        return self._node("Conv", [x, self._constant(kernel.transpose(3, 2, 0, 1)), self._constant(bias)])

    def prelu(self, x: str, spatial: bool = True) -> str:
        alpha = self._weights.pop(0).reshape(-1)
        return self._node("PRelu", [x, self._constant(alpha.reshape(-1, 1, 1) if spatial else alpha)])

    def max_pool(self, x: str, size: int, same: bool) -> str:
        padding = {"auto_pad": "SAME_UPPER"} if same else {}
        return self._node("MaxPool", [x], kernel_shape=[size, size], strides=[2, 2], **padding)

    def flatten_like_keras(self, x: str) -> str:
        """mtcnn permutes (H, W) before flattening: NCHW -> N, W, H, C -> N, W*H*C."""
        return self._node("Flatten", [self._node("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)

    def dense(self, x: str) -> str:
        kernel, bias = self._weights.pop(0), self._weights.pop(0)
        return self._node("Gemm", [x, self._constant(kernel), self._constant(bias)])

    def softmax(self, x: str, axis: int) -> str:
        return self._node("Softmax", [x], axis=axis)

    def to_nhwc(self, x: str) -> str:
        return self._node("Transpose", [x], perm=[0, 2, 3, 1])

    def model(self, inputs: str, side: object, outputs: Sequence[str], shapes: Sequence[list]) -> bytes:
        from onnx import TensorProto, helper

        if self._weights:
            raise ValueError(f"{len(self._weights)} MTCNN weight arrays left unused: the graph does not match")
        graph = helper.make_graph(
            self.nodes,
            "mtcnn_stage",
            [helper.make_tensor_value_info(inputs, TensorProto.FLOAT, ["n", 3, side, side])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, s) for o, s in zip(outputs, shapes, strict=True)],
            self.initializers,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 7
        return model.SerializeToString()


def pnet(weights: Sequence[np.ndarray]) -> bytes:
    """PNet, fully convolutional over any size: box regression and face scores per 12 px cell (NHWC outputs)."""
    g = _GraphBuilder(weights)
    x = g.max_pool(g.prelu(g.conv("input")), 2, same=True)
    x = g.prelu(g.conv(g.prelu(g.conv(x))))
    regression, scores = g.to_nhwc(g.conv(x)), g.to_nhwc(g.softmax(g.conv(x), axis=1))
    return g.model("input", None, [regression, scores], [["n", "h", "w", 4], ["n", "h", "w", 2]])


def rnet(weights: Sequence[np.ndarray]) -> bytes:
    """RNet on 24 px patches: refined box regression and face scores."""
    g = _GraphBuilder(weights)
    x = g.max_pool(g.prelu(g.conv("input")), 3, same=True)
    x = g.max_pool(g.prelu(g.conv(x)), 3, same=False)
    x = g.prelu(g.dense(g.flatten_like_keras(g.prelu(g.conv(x)))), spatial=False)
    regression, scores = g.dense(x), g.softmax(g.dense(x), axis=1)
    return g.model("input", RNET_SIDE, [regression, scores], [["n", 4], ["n", 2]])


def onet(weights: Sequence[np.ndarray]) -> bytes:
    """ONet on 48 px patches: box regression, the five landmarks and face scores."""
    g = _GraphBuilder(weights)
    x = g.max_pool(g.prelu(g.conv("input")), 3, same=True)
    x = g.max_pool(g.prelu(g.conv(x)), 3, same=False)
    x = g.max_pool(g.prelu(g.conv(x)), 2, same=True)
    x = g.prelu(g.dense(g.flatten_like_keras(g.prelu(g.conv(x)))), spatial=False)
    regression, landmarks, scores = g.dense(x), g.dense(x), g.softmax(g.dense(x), axis=1)
    return g.model("input", ONET_SIDE, [regression, landmarks, scores], [["n", 4], ["n", 10], ["n", 2]])
