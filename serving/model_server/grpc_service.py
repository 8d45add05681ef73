"""TF Serving's gRPC API (port 8500) over the model registry, on tensorflow-serving-api's own stubs.

PredictionService.Predict and GetModelMetadata; ModelService.GetModelStatus
and HandleReloadConfigRequest. Classify and Regress need classification or
regression signatures, which the models served here do not have; they answer
UNIMPLEMENTED with that reason.
"""

import logging
from concurrent import futures
from typing import Callable, Optional, TypeVar

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from serving.model_server import monitoring
from serving.model_server.limits import RequestLimits
from serving.model_server.servables import (
    LoadedVersion,
    ModelRegistry,
    NotFoundError,
    SignatureNotFoundError,
    model_spec,
)
from serving.protocol import tensor_protos

# TF Serving accepts messages up to 2 GiB; limits on uploads belong in front of it.
MAX_MESSAGE_BYTES = 2**31 - 1
SIGNATURE_DEF_FIELD = "signature_def"

Response = TypeVar("Response")


def _abort_on_error(context: grpc.ServicerContext, call: Callable[[], Response]) -> Response:
    try:
        return call()
    except NotFoundError as e:
        context.abort(grpc.StatusCode.NOT_FOUND, str(e))
    except SignatureNotFoundError as e:
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
    except ValueError as e:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    except Exception as e:  # noqa: BLE001 - any failure answers INTERNAL and the server goes on
        logging.exception("gRPC request failed")
        context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
    raise AssertionError("context.abort returns only by raising")


def _version_of(spec) -> Optional[int]:  # noqa: ANN001 - a tensorflow.serving.ModelSpec
    return spec.version.value if spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry, limits: Optional[RequestLimits] = None):
        self._registry = registry
        self._limits = limits or RequestLimits()

    def _resolve(self, spec) -> LoadedVersion:  # noqa: ANN001
        return self._registry.model(spec.name).resolve(_version_of(spec), spec.version_label or None)

    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        def predict() -> predict_pb2.PredictResponse:
            with monitoring.observed(request.model_spec.name, "predict"):
                version = self._resolve(request.model_spec)
                inputs = {key: tensor_protos.to_array(proto) for key, proto in request.inputs.items()}
                self._limits.check(inputs)
                outputs = version.predict(request.model_spec.signature_name, inputs, list(request.output_filter))
                response = predict_pb2.PredictResponse(
                    model_spec=model_spec(version, request.model_spec.signature_name)
                )
                for key, value in outputs.items():
                    tensor_protos.write_array(response.outputs[key], value)
                return response

        return _abort_on_error(context, predict)

    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        def metadata() -> get_model_metadata_pb2.GetModelMetadataResponse:
            if list(request.metadata_field) != [SIGNATURE_DEF_FIELD]:
                raise ValueError(
                    f"Metadata field must be exactly [{SIGNATURE_DEF_FIELD!r}], got {list(request.metadata_field)}"
                )
            version = self._resolve(request.model_spec)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, signature_def in version.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(signature_def)
            response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=model_spec(version))
            response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
            return response

        return _abort_on_error(context, metadata)

    def Classify(self, request, context: grpc.ServicerContext):  # noqa: ANN001, ANN201
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Classify needs a classification signature; use Predict")

    def Regress(self, request, context: grpc.ServicerContext):  # noqa: ANN001, ANN201
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress needs a regression signature; use Predict")

    def MultiInference(self, request, context: grpc.ServicerContext):  # noqa: ANN001, ANN201
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference needs classification or regression signatures")


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry):
        self._registry = registry

    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        return _abort_on_error(
            context,
            lambda: self._registry.model(spec.name).status(_version_of(spec), spec.version_label or None),
        )

    def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        def reload() -> model_management_pb2.ReloadConfigResponse:
            self._registry.apply_config(request.config)
            return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))

        return _abort_on_error(context, reload)


def make_grpc_server(
    registry: ModelRegistry, address: str, workers: int = 16, limits: Optional[RequestLimits] = None
) -> grpc.Server:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(registry, limits), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry), server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"Could not bind the gRPC server to {address}")
    return server
