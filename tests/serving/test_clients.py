"""REST and gRPC clients, and the video analyzer, against the model server on a freshly pushed model."""

import numpy as np
import pytest

from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.sampling import VideoError
from serving.clients import GrpcClient, InProcessModel, ModelTarget, RestClient, ServingError
from serving.video_client import VERDICT_NO_FACE, VideoAnalyzer
from tests.helpers import face_crops, write_numbered_video

SMALL = IngestConfig(frames_per_video=6, image_size=64)


@pytest.fixture(scope="module")
def clients(model_server):
    target = ModelTarget("faces")
    grpc_client = GrpcClient(model_server.grpc_address, target)
    yield {"rest": RestClient(model_server.rest_url, target), "grpc": grpc_client}
    grpc_client.close()


@pytest.fixture(scope="module")
def reference(model_server):
    return InProcessModel(model_server.exported[1])


def test_clients_give_the_in_process_scores(clients, reference):
    images = face_crops(5)
    expected = reference.predict(images).probabilities
    for name, client in clients.items():
        prediction = client.predict(images)
        np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6, err_msg=name)
    assert clients["grpc"].predict(images).model_version == 1


def test_clients_report_status_metadata_and_errors(model_server, clients):
    for client in clients.values():
        assert [s.version for s in client.status().model_version_status] == [1]
    assert "serving_default" in clients["rest"].metadata()["metadata"]["signature_def"]["signature_def"]
    assert clients["grpc"].metadata().model_spec.version.value == 1
    with pytest.raises(ServingError) as rest_error:
        RestClient(model_server.rest_url, ModelTarget("missing")).predict(face_crops(1))
    assert rest_error.value.status == 404
    missing = GrpcClient(model_server.grpc_address, ModelTarget("missing"))
    with pytest.raises(ServingError) as grpc_error:
        missing.predict(face_crops(1))
    missing.close()
    assert grpc_error.value.status == "NOT_FOUND"


@pytest.fixture(scope="module")
def detector():
    from deepfake_detection.ingest.detector import FaceDetector

    return FaceDetector.from_config(SMALL)


def test_video_verdicts_match_the_in_process_model(sample_dataset, clients, reference, detector):
    local = VideoAnalyzer(reference, SMALL, detector=detector)
    for record in read_dataset(sample_dataset)[:2]:
        expected = local.analyse_video(record.path)
        assert expected.faces and expected.verdict in ("fake", "real")
        for name, client in clients.items():
            verdict = VideoAnalyzer(client, SMALL, batch_size=4, detector=detector).analyse_video(record.path)
            assert verdict.verdict == expected.verdict, name
            assert verdict.fake_probability == pytest.approx(expected.fake_probability, abs=1e-6)
            assert [f.frame_index for f in verdict.faces] == [f.frame_index for f in expected.faces]
            np.testing.assert_allclose(
                [f.fake_probability for f in verdict.faces], [f.fake_probability for f in expected.faces], atol=1e-6
            )
            assert set(verdict.timings_s) == {"decode", "detection", "model", "total"}


def test_video_without_faces_is_no_face_and_broken_video_raises(tmp_path, clients, detector):
    analyzer = VideoAnalyzer(clients["grpc"], SMALL, detector=detector)
    grey = str(tmp_path / "grey.mp4")
    write_numbered_video(grey, frames=10)
    verdict = analyzer.analyse_video(grey)
    assert verdict.verdict == VERDICT_NO_FACE and verdict.fake_probability is None and not verdict.faces
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError) as error:
        analyzer.analyse_video(str(broken))
    assert error.value.status == "unreadable"
