"""A version pushed while requests stream in is picked up with zero failed requests."""

import threading
import time

import numpy as np

from deepfake_detection import contract
from serving.client.tf_serving import GrpcClient, ModelTarget, RestClient
from tests.helpers import face_crops, push

STREAM_LIMIT_S = 90.0


def _stream(client, stop, results):
    images = face_crops(2)
    while not stop.is_set():
        try:
            prediction = client.predict(images)
            results.append(("ok", prediction.model_version, prediction.probabilities))
        except Exception as e:  # noqa: BLE001 - every failure is counted, not raised, so the test sees them all
            results.append(("failed", None, repr(e)))


def test_new_version_is_served_without_dropping_requests(model_server, in_process):
    target = ModelTarget("swap")
    grpc_client = GrpcClient(model_server.grpc_address, target)
    rest_client = RestClient(model_server.rest_url, target)
    stop = threading.Event()
    grpc_results, rest_results = [], []
    threads = [
        threading.Thread(target=_stream, args=(grpc_client, stop, grpc_results)),
        threading.Thread(target=_stream, args=(rest_client, stop, rest_results)),
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        pushed_after = len(grpc_results)
        push(model_server.exported[2], f"{model_server.base}/swap", 2)
        deadline = time.monotonic() + STREAM_LIMIT_S
        while time.monotonic() < deadline and sum(r[1] == 2 for r in grpc_results) < 20:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        grpc_client.close()

    failures = [r for r in grpc_results + rest_results if r[0] == "failed"]
    assert not failures, failures[:3]
    versions = [r[1] for r in grpc_results]
    assert versions[0] == 1 and pushed_after > 0 and versions.count(2) >= 20
    assert versions == sorted(versions), "once version 2 answers, version 1 never answers again"
    expected = {
        v: in_process[v].signatures[contract.SERVING_DEFAULT](images=np.array(face_crops(2), object))[
            contract.OUTPUT_KEY
        ]
        for v in (1, 2)
    }
    for _, version, probabilities in grpc_results:
        np.testing.assert_allclose(probabilities, expected[version].numpy(), atol=1e-6)
    assert len(rest_results) > 10
    status = rest_client.status()
    assert [s.version for s in status.model_version_status] == [2]
