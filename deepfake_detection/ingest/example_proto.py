"""`tf.train.Example` messages without importing TensorFlow.

The ingest writes tf.Examples, and importing `tensorflow` to get their class
costs 3-4 s and 700 MB per process, more than detecting the faces of a short
video. The message is small and frozen (tensorflow/core/example/example.proto
and feature.proto), so its descriptor is declared here, in a pool of its own
(TensorFlow's classes can live in the same process), and protobuf builds the
classes. The bytes are the same: tests parse them with `tf.train.Example`.
"""

from google.protobuf import descriptor_pb2

from deepfake_detection.proto_messages import FIELD, OPTIONAL, REPEATED, add_map_field, add_message, message_classes

_PACKAGE = "tensorflow"


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="deepfake_detection/example.proto", package=_PACKAGE)
    file.syntax = "proto3"
    add_message(file, "BytesList", [("value", 1, FIELD.TYPE_BYTES, REPEATED, "", False)])
    add_message(file, "FloatList", [("value", 1, FIELD.TYPE_FLOAT, REPEATED, "", True)])
    add_message(file, "Int64List", [("value", 1, FIELD.TYPE_INT64, REPEATED, "", True)])
    kinds = [
        ("bytes_list", 1, FIELD.TYPE_MESSAGE, OPTIONAL, "BytesList", False),
        ("float_list", 2, FIELD.TYPE_MESSAGE, OPTIONAL, "FloatList", False),
        ("int64_list", 3, FIELD.TYPE_MESSAGE, OPTIONAL, "Int64List", False),
    ]
    add_message(file, "Feature", kinds, oneof="kind")
    add_map_field(file, add_message(file, "Features", []), "feature", 1, "Feature")
    add_message(file, "Example", [("features", 1, FIELD.TYPE_MESSAGE, OPTIONAL, "Features", False)])
    return file


_, _CLASSES = message_classes(
    [_file()],
    [f"{_PACKAGE}.{name}" for name in ("BytesList", "FloatList", "Int64List", "Feature", "Features", "Example")],
)
BytesList = _CLASSES["tensorflow.BytesList"]
FloatList = _CLASSES["tensorflow.FloatList"]
Int64List = _CLASSES["tensorflow.Int64List"]
Feature = _CLASSES["tensorflow.Feature"]
Features = _CLASSES["tensorflow.Features"]
Example = _CLASSES["tensorflow.Example"]
