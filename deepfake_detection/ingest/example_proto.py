"""`tf.train.Example` messages without importing TensorFlow.

The ingest writes tf.Examples, and importing `tensorflow` to get their class
costs 3-4 s and 700 MB per process, more than detecting the faces of a short
video. The message is small and frozen (tensorflow/core/example/example.proto
and feature.proto), so its descriptor is declared here, in a pool of its own
(TensorFlow's classes can live in the same process), and protobuf builds the
classes. The bytes are the same: tests parse them with `tf.train.Example`.
"""

from typing import Dict, Iterable, Type

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

_PACKAGE = "tensorflow"
_FIELD = descriptor_pb2.FieldDescriptorProto


def _message(
    file: descriptor_pb2.FileDescriptorProto, name: str, fields: Iterable[tuple], oneof: str = ""
) -> descriptor_pb2.DescriptorProto:
    """(name, number, type, label, type name or '', packed) fields; every field in `oneof` when named."""
    proto = file.message_type.add(name=name)
    if oneof:
        proto.oneof_decl.add(name=oneof)
    for field_name, number, kind, label, type_name, packed in fields:
        field = proto.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = f".{_PACKAGE}.{type_name}"
        if packed:
            field.options.packed = True
        if oneof:
            field.oneof_index = 0
    return proto


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name="deepfake_detection/example.proto", package=_PACKAGE)
    file.syntax = "proto3"
    repeated, optional = _FIELD.LABEL_REPEATED, _FIELD.LABEL_OPTIONAL
    _message(file, "BytesList", [("value", 1, _FIELD.TYPE_BYTES, repeated, "", False)])
    _message(file, "FloatList", [("value", 1, _FIELD.TYPE_FLOAT, repeated, "", True)])
    _message(file, "Int64List", [("value", 1, _FIELD.TYPE_INT64, repeated, "", True)])
    kinds = [
        ("bytes_list", 1, _FIELD.TYPE_MESSAGE, optional, "BytesList", False),
        ("float_list", 2, _FIELD.TYPE_MESSAGE, optional, "FloatList", False),
        ("int64_list", 3, _FIELD.TYPE_MESSAGE, optional, "Int64List", False),
    ]
    _message(file, "Feature", kinds, oneof="kind")
    entries = [("feature", 1, _FIELD.TYPE_MESSAGE, repeated, "Features.FeatureEntry", False)]
    features = _message(file, "Features", entries)
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=_FIELD.TYPE_STRING, label=optional)
    entry.field.add(name="value", number=2, type=_FIELD.TYPE_MESSAGE, label=optional, type_name=f".{_PACKAGE}.Feature")
    _message(file, "Example", [("features", 1, _FIELD.TYPE_MESSAGE, optional, "Features", False)])
    return file


def _classes() -> Dict[str, Type[message.Message]]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    factory = message_factory.MessageFactory(pool)
    names = ("BytesList", "FloatList", "Int64List", "Feature", "Features", "Example")
    return {name: factory.GetPrototype(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in names}


_CLASSES = _classes()
BytesList = _CLASSES["BytesList"]
FloatList = _CLASSES["FloatList"]
Int64List = _CLASSES["Int64List"]
Feature = _CLASSES["Feature"]
Features = _CLASSES["Features"]
Example = _CLASSES["Example"]
