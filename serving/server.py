"""Assemble and run the servers: public GenerationService, ModelAdminService, health, metrics.

`ServingApp` wires the components (model registry, job runner, generation store, artifact
store, event bus, enhancement hook, metrics) into two grpc.aio servers bound to `server.host`:
the public port (API-key auth, health, reflection) and the admin port (health, reflection).
`serve` runs them until SIGTERM/SIGINT, then drains: health turns NOT_SERVING, new generations
get UNAVAILABLE, in-flight ones get up to `server.drain_seconds` to finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import grpc
import torch
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from serving.admin_service import ModelAdminServicer, update_model_info
from serving.artifacts import ArtifactStore
from serving.auth import ApiKeyInterceptor
from serving.config import ServeConfig
from serving.enhancement import (
    ENHANCEMENT_RESULTS,
    EnhancementHook,
    PromptEnhancer,
    build_enhancer,
)
from serving.events.bus import EventBus, Topics
from serving.events.messages import EventPublisher
from serving.generation_service import GenerationServicer
from serving.jobs import Admission, JobRunner
from serving.metrics import ServingMetrics
from serving.models import ModelRegistry, StagingError
from serving.protos import GENERATION_SERVICE, MODEL_ADMIN_SERVICE, admin_pb_grpc, pb_grpc
from serving.store import GenerationStore

log = logging.getLogger(__name__)


def build_bus(config: ServeConfig) -> EventBus:
    if config.events.backend == "kafka":
        from serving.events.kafka_bus import KafkaEventBus

        return KafkaEventBus(config.events.kafka_bootstrap, config.events.timeout_seconds)
    from serving.events.sqlite_bus import SqliteEventBus

    return SqliteEventBus(config.resolve(config.events.sqlite_path))


def build_registry(config: ServeConfig) -> ModelRegistry:
    """Load, verify and smoke-test the configured model (refuses to start on a bad one)."""
    registry = ModelRegistry(config.model.name, config.model.device)
    try:
        registry.stage(config.model.path)
    except StagingError as error:
        raise StagingError(error.reason, f"model.path: {error}") from None
    return registry


def api_keys(config: ServeConfig) -> list[str]:
    raw = os.environ.get(config.server.api_keys_env, "")
    return [key.strip() for key in raw.split(",") if key.strip()]


def describe_enhancement(config: ServeConfig) -> str:
    """One line saying which prompt enhancer serves (for the start-up log)."""
    enhancement = config.enhancement
    if enhancement.backend != "openai":
        return enhancement.backend
    openai = enhancement.openai
    return (
        f"openai {openai.resolved_base_url()} model={openai.model} "
        f"timeout={openai.timeout_seconds}s/{enhancement.timeout_seconds}s "
        f"default={'on' if enhancement.is_default_enabled else 'off'}"
    )


class ServingApp:
    """The running service; `start` binds the ports (chosen ones are in `port`/`admin_port`)."""

    def __init__(
        self,
        config: ServeConfig,
        registry: ModelRegistry,
        bus: EventBus,
        enhancer: PromptEnhancer | None = None,
        keys: list[str] | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.bus = bus
        self.metrics = ServingMetrics()
        self.topics = Topics(config.events.topic_prefix)
        self.store = GenerationStore(Path(config.state_dir) / "generations.sqlite")
        self.store.mark_interrupted()
        self.artifacts = ArtifactStore(config.resolve(config.artifacts.url))
        self.publisher = EventPublisher(bus, self.topics, self.metrics)
        admission = Admission(
            config.admission.max_concurrent, config.admission.max_queue, self.metrics
        )
        self.runner = JobRunner(admission, self.store, self.artifacts, self.publisher, self.metrics)
        if enhancer is None:
            enhancer = build_enhancer(config.enhancement)
        self.enhancement = EnhancementHook(
            enhancer,
            config.enhancement.timeout_seconds,
            config.enhancement.limits,
            config.enhancement.resample_attempts,
            config.enhancement.resample_temperature,
        )
        for result in ENHANCEMENT_RESULTS:  # every series exists from the start, at 0
            self.metrics.enhancement.labels(result)
        self.generation = GenerationServicer(
            registry=registry,
            runner=self.runner,
            store=self.store,
            publisher=self.publisher,
            enhancement=self.enhancement,
            metrics=self.metrics,
            max_prompt_chars=config.model.max_prompt_chars,
            max_message_bytes=config.server.max_message_bytes,
            is_enhancement_default=config.enhancement.is_default_enabled,
        )
        self.admin = ModelAdminServicer(registry, self.publisher, self.metrics)
        self.health = health.aio.HealthServicer()
        self.keys = api_keys(config) if keys is None else keys
        self.port = 0
        self.admin_port = 0
        self.metrics_port = 0
        self._servers: list[grpc.aio.Server] = []
        self._metrics_http: object | None = None

    def _options(self) -> list[tuple[str, int]]:
        size = self.config.server.max_message_bytes
        return [
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.so_reuseport", 0),
        ]

    async def start(self) -> None:
        server_config = self.config.server
        await asyncio.to_thread(self.bus.create_topics, self.topics.all())
        if not self.keys:
            log.warning(
                "no API keys in $%s: the public port accepts anyone", server_config.api_keys_env
            )
        public = grpc.aio.server(
            interceptors=[ApiKeyInterceptor(self.keys)], options=self._options()
        )
        pb_grpc.add_GenerationServiceServicer_to_server(self.generation, public)
        admin = grpc.aio.server(options=self._options())
        admin_pb_grpc.add_ModelAdminServiceServicer_to_server(self.admin, admin)
        for server, names in ((public, [GENERATION_SERVICE]), (admin, [MODEL_ADMIN_SERVICE])):
            health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
            if server_config.is_reflection_enabled:
                service_names = [*names, health.SERVICE_NAME, reflection.SERVICE_NAME]
                reflection.enable_server_reflection(service_names, server)
        self.port = public.add_insecure_port(f"{server_config.host}:{server_config.port}")
        self.admin_port = admin.add_insecure_port(
            f"{server_config.host}:{server_config.admin_port}"
        )
        await public.start()
        await admin.start()
        self._servers = [public, admin]
        if server_config.metrics_port >= 0:
            http_server, _ = start_http_server(
                server_config.metrics_port, server_config.host, registry=self.metrics.registry
            )
            self._metrics_http = http_server
            self.metrics_port = http_server.server_port
        update_model_info(self.metrics, self.registry)
        for name in ("", GENERATION_SERVICE, MODEL_ADMIN_SERVICE):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Drain: NOT_SERVING, refuse new generations, let in-flight ones finish, then stop."""
        grace = self.config.server.drain_seconds if grace_seconds is None else grace_seconds
        self.generation.is_draining = True
        await self.health.enter_graceful_shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while not self.runner.admission.is_idle and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.gather(*(s.stop(max(0.0, deadline - loop.time())) for s in self._servers))
        await asyncio.to_thread(self.runner.shutdown)
        await self.enhancement.close()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()  # type: ignore[attr-defined]
        self.store.close()
        self.bus.close()

    async def wait(self) -> None:
        await asyncio.gather(*(s.wait_for_termination() for s in self._servers))


async def serve(config: ServeConfig, ready: asyncio.Event | None = None) -> None:
    """Run until SIGTERM or SIGINT, then drain."""
    torch.set_num_threads(config.model.threads)
    registry = await asyncio.to_thread(build_registry, config)
    bus = build_bus(config)
    app = ServingApp(config, registry, bus)
    await app.start()
    active = registry.active.identity
    log.info(
        "serving %s (%s) on %s:%d, admin %d, metrics %d",
        active.version,
        active.digest[:12],
        config.server.host,
        app.port,
        app.admin_port,
        app.metrics_port,
    )
    log.info("prompt enhancer: %s", describe_enhancement(config))
    problem = await app.enhancement.check()
    if problem is not None:
        log.warning("prompt enhancer: %s; prompts fall back to the user's until fixed", problem)
    print(
        f'{{"event": "ready", "port": {app.port}, "admin_port": {app.admin_port}, '
        f'"metrics_port": {app.metrics_port}, "model_version": "{active.version}"}}',
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("draining (up to %.0f s)", config.server.drain_seconds)
    await app.stop()
