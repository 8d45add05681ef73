"""TF Serving's gRPC API as the detection service calls it, without TensorFlow.

tensorflow-serving-api's generated modules import TensorFlow (several GB
installed, seconds and hundreds of MB per process) for a service whose own
work is decoding, face detection and one gRPC call. The messages it needs are
few and frozen in TF Serving's API: `PredictionService.Predict` and
`GetModelMetadata`, `ModelService.GetModelStatus`, and the `TensorProto` they
carry. Their descriptors are declared here (tests check every field against
tensorflow-serving-api's own), protobuf builds the classes, and the stubs call
the methods by their gRPC paths. Fields a client never sets or reads (a
tensor's resource handles and variants) are left out: protobuf keeps them as
unknown fields, byte for byte.
"""

from typing import Any, Callable

import grpc
from google.protobuf import any_pb2, descriptor_pb2, wrappers_pb2

from deepfake_detection.proto_messages import (
    FIELD,
    OPTIONAL,
    REPEATED,
    add_enum,
    add_map_field,
    add_message,
    message_classes,
)

# tensorflow/core/framework/types.proto: the element types a client converts (see serving.protocol.tensor_protos).
DATA_TYPES = (
    ("DT_INVALID", 0),
    ("DT_FLOAT", 1),
    ("DT_DOUBLE", 2),
    ("DT_INT32", 3),
    ("DT_UINT8", 4),
    ("DT_INT16", 5),
    ("DT_INT8", 6),
    ("DT_STRING", 7),
    ("DT_COMPLEX64", 8),
    ("DT_INT64", 9),
    ("DT_BOOL", 10),
    ("DT_BFLOAT16", 14),
    ("DT_UINT16", 17),
    ("DT_COMPLEX128", 18),
    ("DT_HALF", 19),
    ("DT_UINT32", 22),
    ("DT_UINT64", 23),
)
# tsl/protobuf/error_codes.proto, which TF Serving's StatusProto (and its REST status answer) names.
ERROR_CODES = (
    ("OK", 0),
    ("CANCELLED", 1),
    ("UNKNOWN", 2),
    ("INVALID_ARGUMENT", 3),
    ("DEADLINE_EXCEEDED", 4),
    ("NOT_FOUND", 5),
    ("ALREADY_EXISTS", 6),
    ("PERMISSION_DENIED", 7),
    ("UNAUTHENTICATED", 16),
    ("RESOURCE_EXHAUSTED", 8),
    ("FAILED_PRECONDITION", 9),
    ("ABORTED", 10),
    ("OUT_OF_RANGE", 11),
    ("UNIMPLEMENTED", 12),
    ("INTERNAL", 13),
    ("UNAVAILABLE", 14),
    ("DATA_LOSS", 15),
    ("DO_NOT_USE_RESERVED_FOR_FUTURE_EXPANSION_USE_DEFAULT_IN_SWITCH_INSTEAD_", 20),
)
MODEL_VERSION_STATES = (
    ("UNKNOWN", 0),
    ("START", 10),
    ("LOADING", 20),
    ("AVAILABLE", 30),
    ("UNLOADING", 40),
    ("END", 50),
)

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA_METHOD = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS_METHOD = "/tensorflow.serving.ModelService/GetModelStatus"


def _file(name: str, package: str, dependencies: tuple = ()) -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(name=f"serving/tf_serving_api/{name}", package=package)
    file.syntax = "proto3"
    file.dependency.extend(dependencies)
    return file


def _tensor_file() -> descriptor_pb2.FileDescriptorProto:
    """tensorflow/core/framework/{types,tensor_shape,tensor}.proto."""
    file = _file("tensor.proto", "tensorflow")
    add_enum(file, "DataType", DATA_TYPES)
    shape = add_message(
        file,
        "TensorShapeProto",
        [
            ("dim", 2, FIELD.TYPE_MESSAGE, REPEATED, "TensorShapeProto.Dim", False),
            ("unknown_rank", 3, FIELD.TYPE_BOOL, OPTIONAL, "", False),
        ],
    )
    dim = shape.nested_type.add(name="Dim")
    dim.field.add(name="size", number=1, type=FIELD.TYPE_INT64, label=OPTIONAL)
    dim.field.add(name="name", number=2, type=FIELD.TYPE_STRING, label=OPTIONAL)
    add_message(
        file,
        "TensorProto",
        [
            ("dtype", 1, FIELD.TYPE_ENUM, OPTIONAL, "DataType", False),
            ("tensor_shape", 2, FIELD.TYPE_MESSAGE, OPTIONAL, "TensorShapeProto", False),
            ("version_number", 3, FIELD.TYPE_INT32, OPTIONAL, "", False),
            ("tensor_content", 4, FIELD.TYPE_BYTES, OPTIONAL, "", False),
            ("half_val", 13, FIELD.TYPE_INT32, REPEATED, "", True),
            ("float_val", 5, FIELD.TYPE_FLOAT, REPEATED, "", True),
            ("double_val", 6, FIELD.TYPE_DOUBLE, REPEATED, "", True),
            ("int_val", 7, FIELD.TYPE_INT32, REPEATED, "", True),
            ("string_val", 8, FIELD.TYPE_BYTES, REPEATED, "", False),
            ("scomplex_val", 9, FIELD.TYPE_FLOAT, REPEATED, "", True),
            ("int64_val", 10, FIELD.TYPE_INT64, REPEATED, "", True),
            ("bool_val", 11, FIELD.TYPE_BOOL, REPEATED, "", True),
            ("dcomplex_val", 12, FIELD.TYPE_DOUBLE, REPEATED, "", True),
            ("uint32_val", 16, FIELD.TYPE_UINT32, REPEATED, "", True),
            ("uint64_val", 17, FIELD.TYPE_UINT64, REPEATED, "", True),
            ("float8_val", 18, FIELD.TYPE_BYTES, OPTIONAL, "", False),
        ],
    )
    return file


def _error_codes_file() -> descriptor_pb2.FileDescriptorProto:
    file = _file("error_codes.proto", "tensorflow.error")
    add_enum(file, "Code", ERROR_CODES)
    return file


def _apis_file() -> descriptor_pb2.FileDescriptorProto:
    """tensorflow_serving/apis/{model,predict,status,get_model_status,get_model_metadata}.proto."""
    file = _file(
        "apis.proto",
        "tensorflow.serving",
        (
            "google/protobuf/wrappers.proto",
            "google/protobuf/any.proto",
            "serving/tf_serving_api/tensor.proto",
            "serving/tf_serving_api/error_codes.proto",
        ),
    )
    message = FIELD.TYPE_MESSAGE
    model_spec = add_message(
        file,
        "ModelSpec",
        [
            ("name", 1, FIELD.TYPE_STRING, OPTIONAL, "", False),
            ("signature_name", 3, FIELD.TYPE_STRING, OPTIONAL, "", False),
        ],
    )
    model_spec.oneof_decl.add(name="version_choice")
    model_spec.field.add(
        name="version", number=2, type=message, label=OPTIONAL, type_name=".google.protobuf.Int64Value", oneof_index=0
    )
    model_spec.field.add(name="version_label", number=4, type=FIELD.TYPE_STRING, label=OPTIONAL, oneof_index=0)

    predict_request = add_message(
        file,
        "PredictRequest",
        [
            ("model_spec", 1, message, OPTIONAL, "ModelSpec", False),
            ("output_filter", 3, FIELD.TYPE_STRING, REPEATED, "", False),
        ],
    )
    add_map_field(file, predict_request, "inputs", 2, ".tensorflow.TensorProto")
    predict_response = add_message(file, "PredictResponse", [("model_spec", 2, message, OPTIONAL, "ModelSpec", False)])
    add_map_field(file, predict_response, "outputs", 1, ".tensorflow.TensorProto")

    # TF Serving names the status fields with underscores in JSON too (its REST status answer).
    status = add_message(file, "StatusProto", [])
    status.field.add(
        name="error_code",
        number=1,
        type=FIELD.TYPE_ENUM,
        label=OPTIONAL,
        type_name=".tensorflow.error.Code",
        json_name="error_code",
    )
    status.field.add(name="error_message", number=2, type=FIELD.TYPE_STRING, label=OPTIONAL, json_name="error_message")
    version_status = add_message(
        file,
        "ModelVersionStatus",
        [
            ("version", 1, FIELD.TYPE_INT64, OPTIONAL, "", False),
            ("state", 2, FIELD.TYPE_ENUM, OPTIONAL, "ModelVersionStatus.State", False),
            ("status", 3, message, OPTIONAL, "StatusProto", False),
        ],
    )
    add_enum(version_status, "State", MODEL_VERSION_STATES)
    add_message(file, "GetModelStatusRequest", [("model_spec", 1, message, OPTIONAL, "ModelSpec", False)])
    status_response = add_message(file, "GetModelStatusResponse", [])
    status_response.field.add(
        name="model_version_status",
        number=1,
        type=message,
        label=REPEATED,
        type_name=".tensorflow.serving.ModelVersionStatus",
        json_name="model_version_status",
    )

    add_message(
        file,
        "GetModelMetadataRequest",
        [
            ("model_spec", 1, message, OPTIONAL, "ModelSpec", False),
            ("metadata_field", 2, FIELD.TYPE_STRING, REPEATED, "", False),
        ],
    )
    metadata_response = add_message(
        file, "GetModelMetadataResponse", [("model_spec", 1, message, OPTIONAL, "ModelSpec", False)]
    )
    add_map_field(file, metadata_response, "metadata", 2, ".google.protobuf.Any")
    return file


def _runtime_file(module: Any) -> descriptor_pb2.FileDescriptorProto:
    """A well-known type's file (google/protobuf/...), as the protobuf runtime ships it."""
    file = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(file)
    return file


MESSAGE_NAMES = (
    "tensorflow.TensorShapeProto",
    "tensorflow.TensorProto",
    "tensorflow.serving.ModelSpec",
    "tensorflow.serving.PredictRequest",
    "tensorflow.serving.PredictResponse",
    "tensorflow.serving.StatusProto",
    "tensorflow.serving.ModelVersionStatus",
    "tensorflow.serving.GetModelStatusRequest",
    "tensorflow.serving.GetModelStatusResponse",
    "tensorflow.serving.GetModelMetadataRequest",
    "tensorflow.serving.GetModelMetadataResponse",
)
POOL, CLASSES = message_classes(
    [
        _runtime_file(wrappers_pb2),
        _runtime_file(any_pb2),
        _tensor_file(),
        _error_codes_file(),
        _apis_file(),
    ],
    MESSAGE_NAMES,
)
DataType = POOL.FindEnumTypeByName("tensorflow.DataType")
TensorShapeProto = CLASSES["tensorflow.TensorShapeProto"]
TensorProto = CLASSES["tensorflow.TensorProto"]
ModelSpec = CLASSES["tensorflow.serving.ModelSpec"]
PredictRequest = CLASSES["tensorflow.serving.PredictRequest"]
PredictResponse = CLASSES["tensorflow.serving.PredictResponse"]
ModelVersionStatus = CLASSES["tensorflow.serving.ModelVersionStatus"]
GetModelStatusRequest = CLASSES["tensorflow.serving.GetModelStatusRequest"]
GetModelStatusResponse = CLASSES["tensorflow.serving.GetModelStatusResponse"]
GetModelMetadataRequest = CLASSES["tensorflow.serving.GetModelMetadataRequest"]
GetModelMetadataResponse = CLASSES["tensorflow.serving.GetModelMetadataResponse"]


def _method(channel: grpc.Channel, path: str, request: Any, response: Any) -> Callable:
    return channel.unary_unary(
        path, request_serializer=request.SerializeToString, response_deserializer=response.FromString
    )


class PredictionServiceStub:
    """`tensorflow.serving.PredictionService`: Predict and GetModelMetadata."""

    def __init__(self, channel: grpc.Channel):
        self.Predict = _method(channel, PREDICT_METHOD, PredictRequest, PredictResponse)  # noqa: N815 - gRPC's names
        self.GetModelMetadata = _method(  # noqa: N815
            channel, GET_MODEL_METADATA_METHOD, GetModelMetadataRequest, GetModelMetadataResponse
        )


class ModelServiceStub:
    """`tensorflow.serving.ModelService`: GetModelStatus."""

    def __init__(self, channel: grpc.Channel):
        self.GetModelStatus = _method(  # noqa: N815 - gRPC's names
            channel, GET_MODEL_STATUS_METHOD, GetModelStatusRequest, GetModelStatusResponse
        )
