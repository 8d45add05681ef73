"""REST and gRPC clients, and the video analyzer, against the model server on a freshly pushed model."""

import cv2
import numpy as np
import pytest
import skimage.data

from deepfake_detection.evaluation.operating_point import OperatingPoint
from deepfake_detection.ingest.faces import Detection
from deepfake_detection.ingest.ingest_config import IngestConfig
from deepfake_detection.ingest.readers import read_dataset
from deepfake_detection.ingest.sampling import SampledFrame, VideoError
from serving.client.local_model import InProcessModel
from serving.client.tf_serving import GrpcClient, ModelTarget, Prediction, RestClient, ServingError
from serving.service.video_analysis import VERDICT_NO_FACE, VideoAnalyzer
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
    point = reference.predict(images).operating_point
    assert point is not None
    for name, client in clients.items():
        prediction = client.predict(images)
        np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(prediction.operating_point.as_vector(), point.as_vector(), err_msg=name)
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
        assert expected.faces and expected.verdict in ("fake", "uncertain", "real")
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


class _Scene:
    """Frames with a person (a real face, in every frame) and a bright square that a detector takes for a face
    in three of them: the motorcycle wheel of a real video."""

    def __init__(self, frames: int = 16):
        face = cv2.resize(skimage.data.astronaut()[30:230, 150:330, ::-1], (90, 100))
        self.images = []
        for _ in range(frames):
            image = np.full((240, 320, 3), 90, np.uint8)
            image[20:120, 20:110] = face
            image[150:210, 230:290] = 255
            self.images.append(image)


class _SceneDetector:
    """Detector outputs for `_Scene`: the person everywhere, the wheel (face-shaped, confident) in frames 0-2."""

    person_marks = (45.0, 60.0, 85.0, 60.0, 65.0, 80.0, 50.0, 100.0, 80.0, 100.0)

    def detect(self, images, indices):
        detections = []
        for index in indices:
            faces = [Detection(index, (20, 20, 90, 100), 0.999, self.person_marks)]
            if index < 3:
                wheel_marks = tuple(
                    (v - 20) * 60 / 90 + 230 if i % 2 == 0 else (v - 20) * 60 / 100 + 150
                    for i, v in enumerate(self.person_marks)
                )
                faces.append(Detection(index, (230, 150, 60, 60), 0.97, wheel_marks))
            detections.append(faces)
        return detections


class _BrightIsFake:
    """Scores a crop by its brightness: the white wheel scores about 1, the face well under it."""

    def predict(self, images):
        scores = [cv2.imdecode(np.frombuffer(i, np.uint8), cv2.IMREAD_GRAYSCALE).mean() / 255 for i in images]
        return Prediction(np.array(scores), 7, OperatingPoint(0.9, 0.2))


def test_a_background_object_taken_for_a_face_does_not_decide_the_verdict():
    scene = _Scene()
    frames = [SampledFrame(i, i / 10, image) for i, image in enumerate(scene.images)]
    analyzer = VideoAnalyzer(_BrightIsFake(), SMALL, detector=_SceneDetector())
    verdict = analyzer.analyse_frames(frames)
    assert {f.track_id for f in verdict.faces} == {0} and len(verdict.faces) == 16
    assert verdict.raw_score < 0.9 and verdict.verdict != "fake"
    [wheel] = verdict.other_tracks
    assert wheel.frames == 3 and wheel.reason.startswith("few_frames") and wheel.box == [230, 150, 60, 60]


def test_clients_explain_through_the_served_explain_signature_as_in_process(clients, reference):
    images = face_crops(3)
    expected = reference.explain(images)
    assert expected.heatmaps.shape[0] == 3 and expected.operating_point is not None
    assert reference.predict(images).heatmaps is None
    for name, client in clients.items():
        explained = client.explain(images)
        np.testing.assert_allclose(explained.probabilities, expected.probabilities, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(explained.heatmaps, expected.heatmaps, atol=1e-5, err_msg=name)
        assert explained.operating_point == expected.operating_point, name
