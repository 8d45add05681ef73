"""The messages declared without TensorFlow match tensorflow-serving-api's, field by field and on the wire, and the
tensor conversions match TensorFlow's own; the detection service imports no TensorFlow."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import descriptor_pool
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2, predict_pb2

from serving.protocol import tensor_protos
from serving.protocol import tf_serving_api as apis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TENSORFLOW_POOL = descriptor_pool.Default()
assert get_model_metadata_pb2 and get_model_status_pb2, "loaded into TensorFlow's pool for the lookups below"


def _type_name(field):
    kind = field.message_type or field.enum_type
    return kind.full_name if kind else None


def _assert_same_enum(ours, theirs):
    assert {v.name: v.number for v in ours.values} == {
        v.name: v.number for v in theirs.values if v.name in ours.values_by_name
    }
    assert set(ours.values_by_name) <= set(theirs.values_by_name)


@pytest.mark.parametrize("name", apis.MESSAGE_NAMES)
def test_every_declared_field_is_tensorflow_servings_own(name):
    ours = apis.POOL.FindMessageTypeByName(name)
    theirs = TENSORFLOW_POOL.FindMessageTypeByName(name)
    for field in ours.fields:
        match = theirs.fields_by_number[field.number]
        assert (field.name, field.type, field.label, field.json_name, _type_name(field)) == (
            match.name,
            match.type,
            match.label,
            match.json_name,
            _type_name(match),
        ), f"{name}.{field.name}"
        assert (field.containing_oneof and field.containing_oneof.name) == (
            match.containing_oneof and match.containing_oneof.name
        )
        if field.message_type and field.message_type.GetOptions().map_entry:
            assert [(f.name, f.number, f.type) for f in field.message_type.fields] == [
                (f.name, f.number, f.type) for f in match.message_type.fields
            ]
        if field.enum_type:
            _assert_same_enum(field.enum_type, match.enum_type)
    left_out = {f.name for f in theirs.fields} - {f.name for f in ours.fields}
    assert left_out <= {"resource_handle_val", "variant_val", "predict_streamed_options", "client_id", "request_id"}
    for enum in ours.enum_types:
        _assert_same_enum(enum, theirs.enum_types_by_name[enum.name])


def test_data_types_are_tensorflows():
    _assert_same_enum(apis.DataType, TENSORFLOW_POOL.FindEnumTypeByName("tensorflow.DataType"))


def test_a_predict_request_has_the_same_bytes_both_ways():
    ours = apis.PredictRequest(model_spec=apis.ModelSpec(name="ensemble", signature_name="serving_default"))
    ours.model_spec.version.value = 7
    tensor_protos.write_strings(ours.inputs["images"], [b"jpeg one", b"jpeg two"])
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert list(tf.make_ndarray(theirs.inputs["images"])) == [b"jpeg one", b"jpeg two"]
    assert theirs.model_spec.WhichOneof("version_choice") == "version" and theirs.model_spec.version.value == 7
    assert apis.PredictRequest.FromString(theirs.SerializeToString()) == ours


ARRAYS = [
    np.array([[0.25, 0.75], [1.5, -2.0]], np.float32),
    np.arange(6, dtype=np.float64).reshape(3, 2),
    np.array([1, -2, 3], np.int32),
    np.array([[7, 8]], np.int64),
    np.array([0, 255], np.uint8),
    np.array([-5, 5], np.int8),
    np.array([-300, 300], np.int16),
    np.array([65535], np.uint16),
    np.array([2**32 - 1], np.uint32),
    np.array([2**64 - 1], np.uint64),
    np.array([True, False]),
    np.array([0.5, -1.25], np.float16),
    np.array([1 + 2j, -3j], np.complex64),
    np.array([1 - 1j], np.complex128),
    np.array([[b"a", b"bc"], [b"", b"\xff"]], object),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: str(a.dtype) + str(a.shape))
def test_tensors_convert_as_tensorflow_does(array):
    ours = apis.TensorProto()
    tensor_protos.write_array(ours, array)
    theirs = tf.make_tensor_proto(array)
    np.testing.assert_array_equal(tf.make_ndarray(type(theirs).FromString(ours.SerializeToString())), array)
    assert tensor_protos.to_array(theirs).dtype == array.dtype
    np.testing.assert_array_equal(tensor_protos.to_array(theirs), array)
    np.testing.assert_array_equal(tensor_protos.to_array(ours), array)


@pytest.mark.parametrize(
    "value, dtype, shape",
    [
        (1.5, tf.float32, [2, 2]),
        (3, tf.int64, [3]),
        (True, tf.bool, [2]),
        (0.5, tf.float16, [3]),
        (2j, tf.complex64, [2]),
    ],
)
def test_typed_value_fields_repeat_their_last_value_as_tensorflow_does(value, dtype, shape):
    proto = tf.make_tensor_proto(value, dtype, shape)
    assert not proto.tensor_content, "a scalar broadcast to the shape, held in the typed field"
    np.testing.assert_array_equal(tensor_protos.to_array(proto), tf.make_ndarray(proto))


def test_a_type_not_converted_is_named():
    proto = tf.make_tensor_proto(np.array([1.0]), tf.bfloat16)
    with pytest.raises(ValueError, match="DT_BFLOAT16"):
        tensor_protos.to_array(proto)


def test_the_detection_service_imports_no_tensorflow():
    code = (
        "import sys, serving.service.detection_service, serving.client.cli\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in {'tensorflow', 'tensorflow_serving', 'keras'})\n"
        "assert not loaded, loaded[:10]"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
