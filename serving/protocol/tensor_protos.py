"""numpy arrays to and from `tensorflow.TensorProto`, without TensorFlow.

The detection service's gRPC client and the local model server both convert
tensors, and the client must not import TensorFlow (see
serving.protocol.tf_serving_api). The functions write into and read from a message
passed in, so they serve TensorFlow's generated TensorProto class (the model
server) and the one declared without TensorFlow (the client) alike. The
encoding is TensorFlow's own (`tf.make_tensor_proto` / `tf.make_ndarray`;
tests compare both ways): numbers packed into `tensor_content`, strings in
`string_val`, and on reading, any typed value field, the last value repeated
when fewer than the shape holds.
"""

from typing import Any, Dict, Sequence, Tuple

import numpy as np

from serving.protocol.tf_serving_api import DataType

# DataType: (numpy type, the repeated field that holds its values when tensor_content is empty).
_DTYPES: Dict[int, Tuple[np.dtype, str]] = {
    DataType.values_by_name[name].number: (np.dtype(numpy_type), field)
    for name, numpy_type, field in (
        ("DT_FLOAT", np.float32, "float_val"),
        ("DT_DOUBLE", np.float64, "double_val"),
        ("DT_INT32", np.int32, "int_val"),
        ("DT_UINT8", np.uint8, "int_val"),
        ("DT_INT16", np.int16, "int_val"),
        ("DT_INT8", np.int8, "int_val"),
        ("DT_UINT16", np.uint16, "int_val"),
        ("DT_INT64", np.int64, "int64_val"),
        ("DT_UINT32", np.uint32, "uint32_val"),
        ("DT_UINT64", np.uint64, "uint64_val"),
        ("DT_BOOL", np.bool_, "bool_val"),
        ("DT_HALF", np.float16, "half_val"),
        ("DT_COMPLEX64", np.complex64, "scomplex_val"),
        ("DT_COMPLEX128", np.complex128, "dcomplex_val"),
    )
}
_DATA_TYPE_OF = {numpy_type: data_type for data_type, (numpy_type, _) in _DTYPES.items()}
DT_STRING = DataType.values_by_name["DT_STRING"].number


def _set_shape(proto: Any, shape: Sequence[int]) -> None:
    for size in shape:
        proto.tensor_shape.dim.add().size = size


def write_strings(proto: Any, values: Sequence[bytes]) -> None:
    """`proto` becomes a 1-D DT_STRING tensor, built field by field: a tenth of `tf.make_tensor_proto`'s time."""
    proto.dtype = DT_STRING
    _set_shape(proto, [len(values)])
    proto.string_val.extend(values)


def write_array(proto: Any, array: np.ndarray) -> None:
    """`proto` becomes `array`: numbers packed into tensor_content, strings (bytes or str) in string_val."""
    if array.dtype == object or array.dtype.kind in "SU":
        proto.dtype = DT_STRING
        _set_shape(proto, array.shape)
        proto.string_val.extend(v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel())
        return
    if array.dtype not in _DATA_TYPE_OF:
        raise ValueError(f"No TensorProto type for numpy {array.dtype}")
    proto.dtype = _DATA_TYPE_OF[array.dtype]
    _set_shape(proto, array.shape)
    proto.tensor_content = np.ascontiguousarray(array).tobytes()


def to_array(proto: Any) -> np.ndarray:
    """`proto` as a numpy array (strings as an object array of bytes); ValueError for a type not converted here."""
    shape = [dim.size for dim in proto.tensor_shape.dim]
    count = int(np.prod(shape))
    if proto.dtype == DT_STRING:
        return _filled(np.array(list(proto.string_val), dtype=object), count).reshape(shape)
    if proto.dtype not in _DTYPES:
        name = DataType.values_by_number[proto.dtype].name if proto.dtype in DataType.values_by_number else proto.dtype
        raise ValueError(f"TensorProto of type {name} is not converted")
    numpy_type, field = _DTYPES[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, numpy_type).reshape(shape)
    values = getattr(proto, field)
    if field == "half_val":
        flat = np.array(values, np.uint16).view(np.float16)
    elif numpy_type.kind == "c":
        pairs = np.array(values, numpy_type.type(0).real.dtype).reshape(-1, 2)
        flat = (pairs[:, 0] + 1j * pairs[:, 1]).astype(numpy_type)
    else:
        flat = np.array(values, numpy_type)
    return _filled(flat, count).reshape(shape)


def _filled(flat: np.ndarray, count: int) -> np.ndarray:
    """TensorFlow's rule for short value lists: the last value repeats; no value at all means zeros."""
    if flat.size == count:
        return flat
    if flat.size == 0:
        return np.zeros(count, flat.dtype) if flat.dtype != object else np.full(count, b"", object)
    if flat.size > count:
        raise ValueError(f"TensorProto holds {flat.size} values for {count} elements")
    return np.concatenate([flat, np.repeat(flat[-1:], count - flat.size)])
