"""Helpers the tests share: media, artifacts, face crops, a loopback HTTP server (fixtures stay in conftest.py)."""

import contextlib
import os
import shutil
import socket
import struct
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, Type

import cv2
import numpy as np
import skimage.data

from deepfake_detection.ingest.faces import Detection


def write_numbered_video(path: str, frames: int, fps: int = 10, size: tuple = (64, 48), fourcc: str = "mp4v") -> None:
    """A video whose frame i is a flat grey of value 5 * i, so a test can tell which frame it got."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), 5 * i, np.uint8))
    writer.release()


def frame_number(image: np.ndarray) -> int:
    return int(round(float(image.mean()) / 5))


def make_broken_files(folder: str, good_video: str) -> dict:
    """Writes one file of each broken kind into `folder`; returns {file name: expected status}."""
    os.makedirs(folder, exist_ok=True)
    expected = {}

    open(os.path.join(folder, "empty.mp4"), "wb").close()
    expected["empty.mp4"] = "unreadable"

    with open(os.path.join(folder, "not_a_video.mp4"), "w") as f:
        f.write("this is a text file with a video extension\n" * 20)
    expected["not_a_video.mp4"] = "unreadable"

    data = open(good_video, "rb").read()
    with open(os.path.join(folder, "truncated.mp4"), "wb") as f:
        f.write(data[: len(data) // 3])
    expected["truncated.mp4"] = "unreadable"

    indexed = os.path.join(folder, "truncated.avi")
    write_numbered_video(indexed, frames=24, fourcc="MJPG")
    data = open(indexed, "rb").read()
    with open(indexed, "wb") as f:
        f.write(data[: len(data) // 2])
    expected["truncated.avi"] = "unreadable"

    with wave.open(os.path.join(folder, "audio_only.wav"), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        tone = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)
        audio.writeframes(struct.pack(f"<{tone.size}h", *tone))
    expected["audio_only.wav"] = "unreadable"

    unknown_codec = os.path.join(folder, "unknown_codec.avi")
    write_numbered_video(unknown_codec, frames=10, fourcc="MJPG")
    patched = open(unknown_codec, "rb").read().replace(b"MJPG", b"QQQQ")
    with open(unknown_codec, "wb") as f:
        f.write(patched)
    expected["unknown_codec.avi"] = "unreadable"

    noise = np.random.default_rng(0).integers(0, 256, size=(30, 240, 320, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(os.path.join(folder, "too_big.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for frame in noise:
        writer.write(frame)
    writer.release()
    expected["too_big.avi"] = "rejected"

    write_numbered_video(os.path.join(folder, "too_long.mp4"), frames=50, fps=10)
    expected["too_long.mp4"] = "rejected"

    write_numbered_video(os.path.join(folder, "too_large.mp4"), frames=5, size=(640, 480))
    expected["too_large.mp4"] = "rejected"

    write_numbered_video(os.path.join(folder, "no_face.mp4"), frames=10)
    expected["no_face.mp4"] = "no_face"
    return expected


def make_artifact(artifact_type, uri: str, splits=None):
    """A TFX artifact of `artifact_type` at `uri` (created), for executor tests."""
    from tfx.types import artifact_utils

    artifact = artifact_type()
    artifact.uri = uri
    os.makedirs(uri, exist_ok=True)
    if splits:
        artifact.split_names = artifact_utils.encode_split_names(list(splits))
    return artifact


# Limits under which the files of `make_broken_files` are rejected and a 1 s 320x240 sample video is not.
BROKEN_FILE_LIMITS = {"max_file_bytes": 400_000, "max_duration_s": 3.0, "max_pixels": 320 * 240}


# The astronaut's face cropped to 200 x 180 px and MTCNN's landmarks on it, as fractions of the crop.
_TOP, _LEFT, _HEIGHT, _WIDTH = 30, 140, 200, 180
_ASTRONAUT_LANDMARKS = np.array([[204, 100], [245, 102], [224, 126], [202, 139], [244, 140]], np.float64)


def astronaut_face(size: int = 128) -> tuple:
    """(uint8 [size, size, 3] face crop, its 10 landmark fractions): a real face with known landmarks."""
    crop = skimage.data.astronaut()[_TOP : _TOP + _HEIGHT, _LEFT : _LEFT + _WIDTH]
    landmarks = (_ASTRONAUT_LANDMARKS - [_LEFT, _TOP]) / [_WIDTH, _HEIGHT]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), landmarks.ravel()


def face_crops(count: int) -> list:
    """Real face crops (the astronaut, shifted and flipped) encoded as PNG and JPEG."""
    import tensorflow as tf  # here, not at the top: the ingest's spawned workers import this module

    face = skimage.data.astronaut()[30:230, 140:320]
    crops = [np.roll(face, 7 * i, axis=1)[:, :: (-1 if i % 2 else 1)] for i in range(count)]
    return [tf.io.encode_png(c).numpy() if i % 2 else tf.io.encode_jpeg(c).numpy() for i, c in enumerate(crops)]


def spread_outputs(model, pixels) -> None:
    """Sets the output layer so an untrained model's scores on `pixels` spread over (0, 1) instead of
    all sitting near 0.5, where agreement to 1e-5 would prove nothing."""
    import keras

    layer = model.get_layer("fake_probability")
    features = keras.Model(model.inputs, layer.input)(pixels, training=False).numpy()
    kernel = np.random.default_rng(0).normal(size=(features.shape[1], 1)).astype("float32")
    logits = features @ kernel
    assert logits.std() > 0, "the features before the output layer do not depend on the input"
    kernel *= 2.0 / logits.std()
    layer.set_weights([kernel, np.array([-float((features @ kernel).mean())], "float32")])


@contextlib.contextmanager
def loopback_http_server(handler: Type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A threaded HTTP server with `handler` on a free loopback port, for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_face_model(export_dir: str, seed: int, edge_exports: bool = False) -> None:
    """A Meso-4 at 64 px whose untrained scores spread over (0, 1), exported with its signatures, an untrained
    locator and an operating point fitted on made-up held-out scores (each seed its own); with `edge_exports`,
    also its edge exports, calibrated and checked on the same 12 face crops."""
    import keras
    import tensorflow as tf

    from deepfake_detection.evaluation import operating_point
    from deepfake_detection.models import data, export, locator
    from deepfake_detection.models.base import ModelSettings
    from deepfake_detection.models.registry import get_backbone

    keras.utils.set_random_seed(seed)
    model = get_backbone("meso4").build(ModelSettings(input_size=64), {})
    spread_outputs(model, data.decode_images(tf.constant(face_crops(6))))
    reals, fakes = [0.1, 0.2, 0.3, 0.35, 0.4 + 0.05 * seed], [0.5, 0.6, 0.7, 0.8, 0.9]
    fitted = operating_point.fit_operating_point(reals, fakes)
    export.export_saved_model(model, export_dir, fitted=fitted, locator=locator.build_locator())
    if edge_exports:
        from deepfake_detection import contract
        from deepfake_detection.models import edge

        faces = os.path.join(os.path.dirname(export_dir), f"faces_{seed}.gz")
        write_face_records(faces, face_crops(12))
        edge.write_edge_exports(model, export_dir, [faces], [faces], contract.TEST_SPLIT)


def write_face_records(path: str, crops: list) -> None:
    """Face examples of `crops` (encoded images), labelled real and fake in turn."""
    import tensorflow as tf

    from deepfake_detection import contract

    with tf.io.TFRecordWriter(path, "GZIP") as writer:
        for number, crop in enumerate(crops):
            feature = {
                contract.IMAGE_KEY: tf.train.Feature(bytes_list=tf.train.BytesList(value=[crop])),
                contract.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[number % 2])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def push(saved_model_dir: str, base_path: str, version: int) -> str:
    """Copies a SavedModel to `<base_path>/<version>` through a temporary folder and one rename."""
    target = os.path.join(base_path, str(version))
    staging = os.path.join(base_path, f".staging-{version}")
    shutil.copytree(saved_model_dir, staging)
    os.rename(staging, target)
    return target


def face_detection(frame, box, confidence=0.99, face_shaped=True):
    """A detection whose landmarks lie as a face's (eyes, nose, mouth) or, for a texture, none at all."""
    x, y, w, h = box
    marks = (x + 0.3 * w, y + 0.4 * h, x + 0.7 * w, y + 0.4 * h, x + 0.5 * w, y + 0.6 * h)
    marks += (x + 0.35 * w, y + 0.8 * h, x + 0.65 * w, y + 0.8 * h)
    return Detection(frame, box, confidence, marks if face_shaped else ())


class DetectorOutputs:
    """A detector that answers given detections: {frame index: [Detection]}."""

    def __init__(self, by_frame):
        self.by_frame = by_frame

    def detect(self, images, indices):
        return [list(self.by_frame.get(index, [])) for index in indices]
