"""A development server that speaks Triton Inference Server's gRPC protocol, backed by onnxruntime.

No Triton server runs on a CPU-only box, so tests and local runs use this one: it implements
`inference.GRPCInferenceService` (the stubs `tritonclient.grpc` ships) for the calls the reward
client makes — ServerLive, ServerReady, ModelReady, ModelMetadata, ModelConfig, ModelInfer —
over a Triton model repository (`<repo>/<name>/config.pbtxt` + `<repo>/<name>/1/model.onnx`,
written by `vpt export rewards`). Each `config.pbtxt` is parsed into Triton's own `ModelConfig`
message, so a file Triton would reject fails here too. Tensors travel as `raw_input_contents`
and `raw_output_contents`, as with the real server; output shapes follow the config
(`[batch] + dims`).

Fault injection for tests: `delay_s` holds every ModelInfer for that long (a slow server);
`fail_first` answers the first N ModelInfer calls with UNAVAILABLE (a restarting one).

    python -m online_rl.triton_dev_server --model-repository runs/rewards/triton --port 8001

It listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import threading
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import onnxruntime
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

TRITON_TO_NUMPY = {
    "UINT8": np.uint8,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
"""Wire data types this server understands."""
HOST = "127.0.0.1"


@dataclass
class ServedModel:
    """One model of the repository: its Triton config and an onnxruntime session."""

    config: model_config_pb2.ModelConfig
    session: onnxruntime.InferenceSession

    @property
    def name(self) -> str:
        return str(self.config.name)


def _wire_type(data_type: int) -> str:
    """`TYPE_FP32` (enum value) -> `FP32`."""
    return str(model_config_pb2.DataType.Name(data_type)).removeprefix("TYPE_")


def load_model_repository(repository: Path, threads: int = 1) -> dict[str, ServedModel]:
    """Parse every `<name>/config.pbtxt` and open `<name>/1/model.onnx`."""
    if not repository.is_dir():
        raise FileNotFoundError(f"model repository {repository} does not exist")
    models = {}
    for folder in sorted(p for p in repository.iterdir() if p.is_dir()):
        config_file = folder / "config.pbtxt"
        graph = folder / "1" / "model.onnx"
        if not config_file.is_file() or not graph.is_file():
            raise FileNotFoundError(f"{folder} needs config.pbtxt and 1/model.onnx")
        config = text_format.Parse(config_file.read_text(), model_config_pb2.ModelConfig())
        if config.name != folder.name:
            raise ValueError(f"{config_file}: name {config.name!r} differs from its folder")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(graph), options, providers=["CPUExecutionProvider"]
        )
        models[folder.name] = ServedModel(config, session)
    if not models:
        raise ValueError(f"model repository {repository} holds no model folders")
    return models


class InferenceServicer(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The subset of Triton's GRPCInferenceService the reward client uses."""

    def __init__(self, models: dict[str, ServedModel], delay_s: float, fail_first: int) -> None:
        self.models = models
        self.delay_s = delay_s
        self.fail_first = fail_first
        self.infer_calls = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def ServerLive(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return service_pb2.ModelReadyResponse(ready=request.name in self.models)

    def ModelMetadata(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        model = self._model(request.name, context)
        batch = [-1] if model.config.max_batch_size > 0 else []
        return service_pb2.ModelMetadataResponse(
            name=model.name,
            versions=["1"],
            platform=model.config.platform,
            inputs=[
                service_pb2.ModelMetadataResponse.TensorMetadata(
                    name=spec.name,
                    datatype=_wire_type(spec.data_type),
                    shape=batch + list(spec.dims),
                )
                for spec in model.config.input
            ],
            outputs=[
                service_pb2.ModelMetadataResponse.TensorMetadata(
                    name=spec.name,
                    datatype=_wire_type(spec.data_type),
                    shape=batch + list(spec.dims),
                )
                for spec in model.config.output
            ],
        )

    def ModelConfig(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return service_pb2.ModelConfigResponse(config=self._model(request.name, context).config)

    def ModelInfer(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        with self._lock:
            self.infer_calls += 1
            call = self.infer_calls
        if call <= self.fail_first:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"injected failure {call}/{self.fail_first}")
        if self.delay_s > 0 and self.stopping.wait(self.delay_s):
            context.abort(grpc.StatusCode.UNAVAILABLE, "server is shutting down")
        model = self._model(request.model_name, context)
        feeds = self._decode_inputs(model, request, context)
        requested = [o.name for o in request.outputs] or [o.name for o in model.config.output]
        known = {o.name: o for o in model.config.output}
        for name in requested:
            if name not in known:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown output {name!r}")
        values = model.session.run(requested, feeds)
        batch = next(iter(feeds.values())).shape[0]
        response = service_pb2.ModelInferResponse(
            model_name=model.name, model_version="1", id=request.id
        )
        for name, value in zip(requested, values, strict=True):
            spec = known[name]
            shape = [batch, *spec.dims] if model.config.max_batch_size > 0 else list(spec.dims)
            array = np.ascontiguousarray(value, dtype=TRITON_TO_NUMPY[_wire_type(spec.data_type)])
            response.outputs.add(name=name, datatype=_wire_type(spec.data_type), shape=shape)
            response.raw_output_contents.append(array.reshape(shape).tobytes())
        return response

    def _model(self, name: str, context: grpc.ServicerContext) -> ServedModel:
        if name not in self.models:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no model {name!r}; this server has {', '.join(sorted(self.models))}",
            )
        return self.models[name]

    def _decode_inputs(
        self,
        model: ServedModel,
        request: service_pb2.ModelInferRequest,
        context: grpc.ServicerContext,
    ) -> dict[str, np.ndarray]:
        specs = {spec.name: spec for spec in model.config.input}
        given = [tensor.name for tensor in request.inputs]
        if sorted(given) != sorted(specs):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"model {model.name!r} takes inputs {sorted(specs)}, got {sorted(given)}",
            )
        if len(request.raw_input_contents) != len(request.inputs):
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "send every input as raw_input_contents"
            )
        feeds = {}
        for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
            spec = specs[tensor.name]
            expected_type = _wire_type(spec.data_type)
            shape = list(tensor.shape)
            batched = model.config.max_batch_size > 0
            item_shape = shape[1:] if batched else shape
            if tensor.datatype != expected_type or item_shape != list(spec.dims):
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {tensor.name!r} must be {expected_type} with item shape "
                    f"{list(spec.dims)}, got {tensor.datatype} {shape}",
                )
            if batched and not 1 <= shape[0] <= model.config.max_batch_size:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"batch of {shape[0]} exceeds max_batch_size {model.config.max_batch_size}",
                )
            dtype = TRITON_TO_NUMPY[expected_type]
            if len(raw) != int(np.prod(shape)) * np.dtype(dtype).itemsize:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {tensor.name!r}: {len(raw)} bytes do not fill shape {shape}",
                )
            feeds[tensor.name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return feeds


class TritonDevServer:
    """A Triton-protocol gRPC server on 127.0.0.1 over a model repository (context manager)."""

    def __init__(
        self,
        repository: Path,
        port: int = 0,
        delay_s: float = 0.0,
        fail_first: int = 0,
        threads: int = 1,
    ) -> None:
        """`port=0` picks a free port (see `url`)."""
        self.servicer = InferenceServicer(
            load_model_repository(repository, threads), delay_s, fail_first
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port(f"{HOST}:{port}")
        if self.port == 0:
            raise OSError(f"could not listen on {HOST}:{port}")

    @property
    def url(self) -> str:
        """host:port to give `tritonclient.grpc.InferenceServerClient`."""
        return f"{HOST}:{self.port}"

    @property
    def infer_calls(self) -> int:
        """ModelInfer calls received so far (including failed and delayed ones)."""
        return self.servicer.infer_calls

    def start(self) -> TritonDevServer:
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop at once; requests in flight are cancelled."""
        self.servicer.stopping.set()
        self._server.stop(grace=None).wait()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()

    def __enter__(self) -> TritonDevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", required=True, help="written by vpt export rewards")
    parser.add_argument("--port", type=int, default=8001, help="gRPC port on 127.0.0.1")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    args = parser.parse_args(argv)
    server = TritonDevServer(Path(args.model_repository), args.port, threads=args.threads)
    server.start()
    print(f"serving {', '.join(sorted(server.servicer.models))} on {server.url}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
