"""A face model version with its edge exports, for the runtime and live tests."""

import pytest

from tests.helpers import export_face_model


@pytest.fixture(scope="session")
def edge_model(tmp_path_factory) -> str:
    pytest.importorskip("tf2onnx")
    pytest.importorskip("ai_edge_litert")
    path = str(tmp_path_factory.mktemp("edge_model") / "1")
    export_face_model(path, seed=1, edge_exports=True)
    return path
