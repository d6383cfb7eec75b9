"""ModelAdminService: stage, activate (compare-and-set), roll back and list model versions.

Served on its own port. Staging runs on a thread (verification, load and smoke generation take
seconds) while the active model keeps serving; a refused checkpoint changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from serving.events.messages import EventPublisher
from serving.jobs import model_ref
from serving.metrics import ServingMetrics
from serving.models import ModelRegistry, ResidentModel, StagingError, VersionError
from serving.protos import admin_pb, admin_pb_grpc

log = logging.getLogger(__name__)


def version_message(
    model: ResidentModel | None, active: ResidentModel | None
) -> admin_pb.ModelVersion | None:
    if model is None:
        return None
    return admin_pb.ModelVersion(
        model=model_ref(model),
        path=model.path,
        is_active=model is active,
        stage=model.stage,
        parent=model.parent or "",
    )


def update_model_info(metrics: ServingMetrics, registry: ModelRegistry) -> None:
    active = registry.active
    metrics.model_info.clear()
    for model in registry.versions():
        identity = model.identity
        metrics.model_info.labels(identity.name, identity.version, identity.digest[:16]).set(
            1 if model is active else 0
        )


class ModelAdminServicer(admin_pb_grpc.ModelAdminServiceServicer):
    def __init__(
        self, registry: ModelRegistry, publisher: EventPublisher, metrics: ServingMetrics
    ) -> None:
        self.registry = registry
        self.publisher = publisher
        self.metrics = metrics
        self._swap_lock = asyncio.Lock()

    async def GetModelInfo(  # noqa: N802 (gRPC method name)
        self, request: admin_pb.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.GetModelInfoResponse:
        active = self.registry.active
        geometry = active.geometry
        return admin_pb.GetModelInfoResponse(
            active=version_message(active, active),
            previous=version_message(self.registry.previous, active),
            frames=geometry.frames,
            height=geometry.height,
            width=geometry.width,
            fps=geometry.fps,
        )

    async def StageModel(  # noqa: N802 (gRPC method name)
        self, request: admin_pb.StageModelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.StageModelResponse:
        if not request.path.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "path: is empty")
        started = time.monotonic()
        try:
            model = await asyncio.to_thread(self.registry.stage, request.path)
        except StagingError as error:
            self.metrics.swaps.labels("stage", f"refused_{error.reason}").inc()
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"path: {error}")
            raise  # unreachable: abort raises
        self.metrics.swaps.labels("stage", "ok").inc()
        update_model_info(self.metrics, self.registry)
        return admin_pb.StageModelResponse(
            version=version_message(model, self.registry.active),
            stage_seconds=time.monotonic() - started,
        )

    async def ActivateModel(  # noqa: N802 (gRPC method name)
        self, request: admin_pb.ActivateModelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.ActivateModelResponse:
        async with self._swap_lock:
            try:
                active, previous = self.registry.activate(
                    request.version, request.expected_current_version
                )
            except VersionError as error:
                self.metrics.swaps.labels("activate", "refused").inc()
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"version: {error}")
                raise
            self.metrics.swaps.labels("activate", "ok").inc()
            update_model_info(self.metrics, self.registry)
            await self._announce(active, previous, is_rollback=False)
        return admin_pb.ActivateModelResponse(
            active=version_message(active, active), previous=version_message(previous, active)
        )

    async def RollbackModel(  # noqa: N802 (gRPC method name)
        self, request: admin_pb.RollbackModelRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.RollbackModelResponse:
        async with self._swap_lock:
            try:
                active = self.registry.rollback()
            except VersionError as error:
                self.metrics.swaps.labels("rollback", "refused").inc()
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))
                raise
            self.metrics.swaps.labels("rollback", "ok").inc()
            update_model_info(self.metrics, self.registry)
            await self._announce(active, self.registry.previous, is_rollback=True)
        return admin_pb.RollbackModelResponse(active=version_message(active, active))

    async def ListModelVersions(  # noqa: N802 (gRPC method name)
        self, request: admin_pb.ListModelVersionsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb.ListModelVersionsResponse:
        active = self.registry.active
        versions = [version_message(m, active) for m in self.registry.versions()]
        return admin_pb.ListModelVersionsResponse(versions=[v for v in versions if v])

    async def _announce(
        self, active: ResidentModel, previous: ResidentModel | None, is_rollback: bool
    ) -> None:
        previous_version = previous.identity.version if previous else ""
        try:
            await asyncio.to_thread(
                self.publisher.model_activated, model_ref(active), previous_version, is_rollback
            )
        except Exception:  # the swap happened; a lost announcement must not undo it
            log.exception("ModelVersionActivated for %s was not written", active.identity.version)
