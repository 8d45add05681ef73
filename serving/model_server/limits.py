"""What one predict request may cost the local model server: instances, and pixels once its images decode.

A request's memory is set by what the model makes of it, not by its size on
the wire: 1,024 copies of a small JPEG (1 MB of JSON) grew the server by
3-4 GB through the model's activations, and one PNG of 0.87 MB declaring
15000 x 15000 pixels decodes to 675 MB, then to float32 and resized copies
(a 7.7 GB peak). TF Serving bounds a batch with its batching parameters'
`max_batch_size`; this server refuses (400 / INVALID_ARGUMENT) a request
whose first dimension is larger, and one whose images' headers declare more
decoded bytes than `max_decoded_image_bytes`, before the model runs.
"""

import dataclasses
from typing import Iterator, Mapping

import numpy as np
import tensorflow as tf

from serving.model_server.model_config import BatchingSettings
from serving.model_server.tensors import BadRequestError
from serving.protocol import image_header

# The model decodes every image to 3 channels of uint8 (`deepfake_detection.models.data.decode_image`).
DECODED_CHANNELS = 3
# 64 MiB of decoded pixels: 32 instances of 800 x 800, where the service sends 256-pixel face crops.
DEFAULT_MAX_DECODED_IMAGE_BYTES = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class RequestLimits:
    """The caps one predict request is held to, on REST and gRPC alike (their flags are the model server's)."""

    max_batch_size: int = BatchingSettings.max_batch_size
    max_decoded_image_bytes: int = DEFAULT_MAX_DECODED_IMAGE_BYTES

    def check(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Raises BadRequestError when the request's batch or its images' decoded bytes are over the limits."""
        for name, array in inputs.items():
            if array.ndim and array.shape[0] > self.max_batch_size:
                raise BadRequestError(
                    f"Input {name!r} has {array.shape[0]} instances, over the limit of {self.max_batch_size} "
                    "(max_batch_size)"
                )
        decoded = 0
        for array in inputs.values():
            if array.dtype != object:
                continue
            for value in array.ravel():
                decoded += _decoded_bytes(value)
                if decoded > self.max_decoded_image_bytes:
                    raise BadRequestError(
                        f"The request's images decode to over {self.max_decoded_image_bytes} bytes "
                        "(max_decoded_image_bytes)"
                    )


def _decoded_bytes(value: object, inside_example: bool = False) -> int:
    """What an encoded image, or the images inside a serialized tf.Example, decode to; 0 for anything else."""
    if not isinstance(value, bytes):
        return 0
    try:
        size = image_header.declared_size(value)
    except image_header.DeclaredTooLargeError as e:
        return e.pixels * DECODED_CHANNELS
    if size is not None:
        return size[0] * size[1] * DECODED_CHANNELS
    if inside_example:
        return 0
    return sum(_decoded_bytes(inner, inside_example=True) for inner in _example_bytes(value))


def _example_bytes(value: bytes) -> Iterator[bytes]:
    """The bytes features of `value` read as a tf.train.Example (the `serving_tf_example` signature's input)."""
    try:
        example = tf.train.Example.FromString(value)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others for bytes that are no Example
        return
    for feature in example.features.feature.values():
        yield from feature.bytes_list.value
