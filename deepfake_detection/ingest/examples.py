"""Builds the `tf.Example`s written by the ingest: one per face crop, one per clip (no TensorFlow import).

Pixels are stored as encoded crops without any backbone's normalisation, so one
dataset serves every model; each model normalises inside its own graph.
"""

from typing import Iterable, List, Mapping, Sequence, Union

import cv2
import numpy as np

from deepfake_detection import contract
from deepfake_detection.ingest import example_proto as pb
from deepfake_detection.ingest.faces import Detection, FaceTrack
from deepfake_detection.ingest.readers import VideoRecord


def encode_image(image: np.ndarray, image_format: str) -> bytes:
    """Encodes a BGR crop as PNG (lossless) or JPEG (quality 95)."""
    if image_format == "png":
        ok, data = cv2.imencode(".png", image)
    else:
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ValueError(f"Could not encode a {image.shape} crop as {image_format}")
    return data.tobytes()


def _bytes(values: Iterable[bytes]) -> pb.Feature:
    return pb.Feature(bytes_list=pb.BytesList(value=list(values)))


def _ints(values: Iterable[int]) -> pb.Feature:
    return pb.Feature(int64_list=pb.Int64List(value=[int(v) for v in values]))


def _floats(values: Iterable[float]) -> pb.Feature:
    return pb.Feature(float_list=pb.FloatList(value=[float(v) for v in values]))


def _video_features(record: VideoRecord, track_id: int) -> dict:
    return {
        contract.LABEL_KEY: _ints([record.label]),
        contract.VIDEO_ID_KEY: _bytes([record.video_id.encode()]),
        contract.SOURCE_ID_KEY: _bytes([record.source_id.encode()]),
        contract.DATASET_KEY: _bytes([record.dataset.encode()]),
        contract.MANIPULATION_KEY: _bytes([record.manipulation.encode()]),
        contract.COMPRESSION_KEY: _bytes([record.compression.encode()]),
        contract.TRACK_ID_KEY: _ints([track_id]),
        contract.SPAN_FEATURE: _ints([record.span]),
    }


def _described(look: Mapping[str, Union[float, int, str]]) -> dict:
    """The input-description features (`input_description`), each stored by its Python type."""
    features = {}
    for key, value in look.items():
        if isinstance(value, str):
            features[key] = _bytes([value.encode()])
        elif isinstance(value, int):
            features[key] = _ints([value])
        else:
            features[key] = _floats([value])
    return features


def face_size_bucket(face_size: int) -> str:
    """The evaluation slice of a face by its shorter side in source pixels."""
    for upper, name in contract.FACE_SIZE_BUCKETS:
        if upper is None or face_size < upper:
            return name
    raise AssertionError("the last face-size bucket is open-ended")


def face_example(
    record: VideoRecord,
    detection: Detection,
    track_id: int,
    timestamp: float,
    encoded_crop: bytes,
    crop_landmarks: Sequence[float],
    look: Mapping[str, Union[float, int, str]],
) -> pb.Example:
    """One face crop with its video's labels, where it was found, its landmarks in crop coordinates and what its
    input looks like (`look`: `input_description`'s features)."""
    features = _video_features(record, track_id)
    features.update(_described(look))
    face_size = min(detection.box[2], detection.box[3])
    features.update(
        {
            contract.IMAGE_KEY: _bytes([encoded_crop]),
            contract.FRAME_INDEX_KEY: _ints([detection.frame_index]),
            contract.TIMESTAMP_KEY: _floats([timestamp]),
            contract.FACE_CONFIDENCE_KEY: _floats([detection.confidence]),
            contract.FACE_BOX_KEY: _ints(detection.box),
            contract.FACE_SIZE_KEY: _ints([face_size]),
            contract.FACE_SIZE_BUCKET_KEY: _bytes([face_size_bucket(face_size).encode()]),
            contract.FACE_LANDMARKS_KEY: _floats(crop_landmarks),
        }
    )
    return pb.Example(features=pb.Features(feature=features))


def clip_windows(track: FaceTrack, clip_length: int) -> List[List[int]]:
    """Positions of consecutive, non-overlapping windows of `clip_length` faces in a track."""
    count = len(track.detections) // clip_length
    return [list(range(i * clip_length, (i + 1) * clip_length)) for i in range(count)]


def clip_example(
    record: VideoRecord,
    track_id: int,
    detections: Sequence[Detection],
    encoded_crops: Sequence[bytes],
    crop_landmarks: Sequence[Sequence[float]],
) -> pb.Example:
    """T crops of one face track in time order with their landmarks, for the temporal model."""
    features = _video_features(record, track_id)
    features.update(
        {
            contract.CLIP_FRAMES_KEY: _bytes(encoded_crops),
            contract.CLIP_FRAME_INDICES_KEY: _ints(d.frame_index for d in detections),
            contract.CLIP_LENGTH_KEY: _ints([len(encoded_crops)]),
            contract.FACE_LANDMARKS_KEY: _floats(value for marks in crop_landmarks for value in marks),
        }
    )
    return pb.Example(features=pb.Features(feature=features))
