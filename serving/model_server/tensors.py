"""TensorFlow Serving's REST tensor encoding, both ways (gRPC's TensorProto: serving.protocol.tensor_protos).

The rules are TF Serving's own: a request is in the row format (`instances`:
one entry per example, an object per example when the signature has several
inputs) or the columnar format (`inputs`: the whole tensor, or an object of
tensors); binary strings travel as `{"b64": "..."}`; the answer mirrors the
request (`predictions` for rows, `outputs` for columns), and a string output
whose name ends in `_bytes` is sent back base64-encoded.
"""

import base64
import binascii
from typing import Any, Dict, Mapping, Tuple

import numpy as np
import tensorflow as tf

B64_KEY = "b64"
BYTES_SUFFIX = "_bytes"


class BadRequestError(ValueError):
    """A request that does not match TF Serving's REST format or the signature; answered with 400."""


def _decode_strings(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {B64_KEY}:
            try:
                return base64.b64decode(value[B64_KEY], validate=True)
            except (binascii.Error, TypeError) as e:
                raise BadRequestError(f"Invalid base64 string: {e}") from e
        raise BadRequestError(f"Unexpected object {sorted(value)!r} inside a tensor value")
    if isinstance(value, list):
        return [_decode_strings(v) for v in value]
    if isinstance(value, str):
        return value.encode()
    return value


def to_array(value: Any, dtype: tf.DType, name: str) -> np.ndarray:
    """A JSON tensor value as a numpy array of the input's dtype."""
    decoded = _decode_strings(value)
    try:
        if dtype == tf.string:
            array = np.array(decoded, dtype=object)
            if array.dtype != object or any(not isinstance(v, bytes) for v in array.ravel()):
                raise BadRequestError(f"Input {name!r} expects strings")
            return array
        array = np.array(decoded, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as e:
        if isinstance(e, BadRequestError):
            raise
        raise BadRequestError(f"Input {name!r} is not a tensor of {dtype.name}: {e}") from e
    return array


def _is_named_inputs(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {B64_KEY}


def request_to_inputs(body: Any, input_dtypes: Mapping[str, tf.DType]) -> Tuple[Dict[str, np.ndarray], bool]:
    """({input name: array}, row_format) from a `:predict` request body."""
    if not isinstance(body, dict):
        raise BadRequestError("The request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequestError('Request must have exactly one of "instances" (row format) or "inputs" (columnar format)')
    row_format = "instances" in body
    value = body["instances" if row_format else "inputs"]
    if row_format:
        if not isinstance(value, list) or not value:
            raise BadRequestError('"instances" must be a non-empty list')
        if _is_named_inputs(value[0]):
            if not all(_is_named_inputs(v) and set(v) == set(value[0]) for v in value):
                raise BadRequestError("Every instance must name the same inputs")
            named = {k: [v[k] for v in value] for k in value[0]}
        else:
            named = _single_input(value, input_dtypes)
    else:
        named = dict(value) if _is_named_inputs(value) else _single_input(value, input_dtypes)
    unknown = sorted(set(named) - set(input_dtypes))
    missing = sorted(set(input_dtypes) - set(named))
    if unknown or missing:
        raise BadRequestError(f"Inputs {sorted(named)} do not match the signature's {sorted(input_dtypes)}")
    return {k: to_array(v, input_dtypes[k], k) for k, v in named.items()}, row_format


def _single_input(value: Any, input_dtypes: Mapping[str, tf.DType]) -> Dict[str, Any]:
    if len(input_dtypes) != 1:
        raise BadRequestError(f"The signature has inputs {sorted(input_dtypes)}: name them in each instance")
    return {next(iter(input_dtypes)): value}


def _to_json(name: str, array: np.ndarray) -> Any:
    if array.dtype == object or array.dtype.kind == "S":
        if name.endswith(BYTES_SUFFIX):
            return np.vectorize(lambda b: {B64_KEY: base64.b64encode(b).decode()}, otypes=[object])(array).tolist()
        return np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(array).tolist()
    return array.tolist()


def outputs_to_response(outputs: Mapping[str, np.ndarray], row_format: bool) -> Dict[str, Any]:
    """The JSON answer of a `:predict` call, in the request's format."""
    if not row_format:
        if len(outputs) == 1:
            [(name, array)] = outputs.items()
            return {"outputs": _to_json(name, array)}
        return {"outputs": {name: _to_json(name, array) for name, array in outputs.items()}}
    batch = {array.shape[0] if array.ndim else 0 for array in outputs.values()}
    if len(batch) != 1 or 0 in batch:
        raise BadRequestError("Outputs of a row-format request must share their first (batch) dimension")
    columns = {name: _to_json(name, array) for name, array in outputs.items()}
    if len(columns) == 1:
        return {"predictions": next(iter(columns.values()))}
    rows = batch.pop()
    return {"predictions": [{name: values[i] for name, values in columns.items()} for i in range(rows)]}
