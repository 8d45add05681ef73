"""Protobuf message classes declared in Python, in a descriptor pool of their own.

Several processes need a handful of TensorFlow's messages (the ingest writes
`tf.Example`s; the detection service speaks TF Serving's gRPC API) and nothing
else of TensorFlow, whose import costs seconds and hundreds of MB. Those
messages are small and frozen, so their descriptors are declared field by
field and protobuf builds the classes. A pool of their own keeps them apart
from TensorFlow's generated classes for the same names when both are loaded
in one process (the tests); the bytes on the wire are the same.
"""

from typing import Dict, Iterable, Sequence, Tuple, Type

from google.protobuf import descriptor_pb2, descriptor_pool, message, message_factory

FIELD = descriptor_pb2.FieldDescriptorProto
REPEATED = FIELD.LABEL_REPEATED
OPTIONAL = FIELD.LABEL_OPTIONAL

# (name, number, type, label, type name or "", packed); a type name starting with "." is fully qualified,
# any other is relative to the file's package.
Field = Tuple[str, int, int, int, str, bool]


def _type_name(file: descriptor_pb2.FileDescriptorProto, type_name: str) -> str:
    return type_name if type_name.startswith(".") else f".{file.package}.{type_name}"


def add_message(
    file: descriptor_pb2.FileDescriptorProto, name: str, fields: Iterable[Field], oneof: str = ""
) -> descriptor_pb2.DescriptorProto:
    """Declares message `name` in `file`; every field belongs to `oneof` when one is named."""
    proto = file.message_type.add(name=name)
    if oneof:
        proto.oneof_decl.add(name=oneof)
    for field_name, number, kind, label, type_name, packed in fields:
        field = proto.field.add(name=field_name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = _type_name(file, type_name)
        if packed:
            field.options.packed = True
        if oneof:
            field.oneof_index = 0
    return proto


def add_map_field(
    file: descriptor_pb2.FileDescriptorProto,
    proto: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    value_type_name: str,
) -> None:
    """A `map<string, value type>` field: protobuf's nested `<Name>Entry` message and a repeated field of it."""
    entry_name = "".join(part.capitalize() for part in name.split("_")) + "Entry"
    entry = proto.nested_type.add(name=entry_name)
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=FIELD.TYPE_STRING, label=OPTIONAL)
    entry.field.add(
        name="value", number=2, type=FIELD.TYPE_MESSAGE, label=OPTIONAL, type_name=_type_name(file, value_type_name)
    )
    proto.field.add(
        name=name,
        number=number,
        type=FIELD.TYPE_MESSAGE,
        label=REPEATED,
        type_name=f".{file.package}.{proto.name}.{entry_name}",
    )


def add_enum(
    container: descriptor_pb2.FileDescriptorProto | descriptor_pb2.DescriptorProto,
    name: str,
    values: Sequence[Tuple[str, int]],
) -> None:
    """An enum at the file's top level or nested in a message."""
    enum = container.enum_type.add(name=name)
    for value_name, number in values:
        enum.value.add(name=value_name, number=number)


def message_classes(
    files: Sequence[descriptor_pb2.FileDescriptorProto], names: Iterable[str]
) -> Tuple[descriptor_pool.DescriptorPool, Dict[str, Type[message.Message]]]:
    """A new pool holding `files` (dependencies first), and the classes of the fully qualified `names`."""
    pool = descriptor_pool.DescriptorPool()
    for file in files:
        pool.Add(file)
    factory = message_factory.MessageFactory(pool)
    return pool, {name: factory.GetPrototype(pool.FindMessageTypeByName(name)) for name in names}
