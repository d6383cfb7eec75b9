"""The serving configuration: one YAML file, validated at start-up, overridable by flags.

Every field has a type, a default and a docstring; `load_serve_config` names the dotted path of
a bad key (`admission.max_queue: expected int, got 'ten'`) and `ServeConfig.validate` checks
ranges. API keys are never in the file: `server.api_keys_env` names the environment variable
that holds them (comma-separated), and `enhancement.openai.api_key_env` the enhancer server's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vpt.config import ConfigError, apply_overrides, config_from_dict
from vpt.prompt_rewriting import RewriteLimits

SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "vpt" / "assets" / "models"
SHIPPED_MODEL = SHIPPED_MODEL / "shapes-default"
MIB = 1 << 20


@dataclass(frozen=True)
class ServerConfig:
    """Listening addresses, limits and auth of the gRPC servers."""

    host: str = "127.0.0.1"
    """Interface both gRPC ports bind to."""
    port: int = 50051
    """Public GenerationService port (0 = any free port)."""
    admin_port: int = 50052
    """ModelAdminService port (0 = any free port)."""
    metrics_port: int = 9464
    """Prometheus /metrics HTTP port (0 = any free port, -1 = off)."""
    max_message_bytes: int = 8 * MIB
    """Largest gRPC message either way."""
    api_keys_env: str = "VPT_API_KEYS"
    """Environment variable with the accepted API keys, comma-separated; unset or empty = no
    auth (local use only)."""
    drain_seconds: float = 30.0
    """On SIGTERM: how long in-flight generations may take to finish."""
    is_reflection_enabled: bool = True
    """Register gRPC server reflection (for grpcurl and debugging)."""


@dataclass(frozen=True)
class AdmissionConfig:
    """How many generations run and wait at once."""

    max_concurrent: int = 1
    """Generations running at once (one per worker thread on the device)."""
    max_queue: int = 8
    """Admitted generations waiting for a worker; more are refused with RESOURCE_EXHAUSTED."""


@dataclass(frozen=True)
class ModelConfig:
    """Which weights serve at start-up."""

    path: str = str(SHIPPED_MODEL)
    """Checkpoint folder of the initial model."""
    name: str = "shapes"
    """Model family name reported in ModelRef and events."""
    device: str = "cpu"
    """Torch device."""
    threads: int = 1
    """Torch intra-op threads."""
    max_prompt_chars: int = 2000
    """Longer prompts are refused."""


@dataclass(frozen=True)
class ArtifactConfig:
    """Where finished videos are stored."""

    url: str = "artifacts"
    """Local folder or any fsspec URL (memory://, s3://...)."""


@dataclass(frozen=True)
class EventConfig:
    """The event bus generations and feedback are written to."""

    backend: Literal["sqlite", "kafka"] = "sqlite"
    """Embedded single-file log, or a Kafka cluster."""
    sqlite_path: str = "events.sqlite"
    """File of the embedded log."""
    kafka_bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers (comma-separated)."""
    topic_prefix: str = "vpt"
    """Topics are <prefix>.generations.v1, <prefix>.feedback.v1, <prefix>.model-versions.v1."""
    timeout_seconds: float = 10.0
    """Longest wait for a durable write."""


@dataclass(frozen=True)
class OpenAIEnhancerConfig:
    """An OpenAI-compatible chat-completions server (vLLM) serving the enhancer LLM."""

    base_url: str = "http://127.0.0.1:8000/v1"
    """API root including the version; requests go to `{base_url}/chat/completions`."""
    base_url_env: str = "VPT_ENHANCER_URL"
    """Environment variable that, when set and non-empty, replaces `base_url` (the endpoint of
    a deployment comes from its environment)."""
    model: str = "smollm2"
    """`model` of each request: the served base model name, or the versioned name of a LoRA
    adapter loaded on the server (`enhancer-v3`)."""
    api_key_env: str = "VPT_ENHANCER_API_KEY"
    """Environment variable holding the server's API key (vLLM `--api-key`); unset = none."""
    max_tokens: int = 64
    """Most tokens generated per rewrite."""
    temperature: float = 0.0
    """Sampling temperature; 0 decodes greedily (the same rewrite for the same prompt)."""
    timeout_seconds: float = 2.0
    """HTTP timeout of one request; past it the user's prompt is used (result `timeout`)."""

    def resolved_base_url(self) -> str:
        """`base_url`, or the value of `base_url_env` when that is set."""
        from_env = os.environ.get(self.base_url_env, "").strip() if self.base_url_env else ""
        return from_env or self.base_url


@dataclass(frozen=True)
class EnhancementConfig:
    """The prompt-enhancer hook in front of the generator."""

    backend: Literal["none", "identity", "openai"] = "none"
    """`none`: no enhancer (requests asking for one get the user's prompt); `identity`: a
    local stand-in that returns the prompt unchanged (for wiring tests); `openai`: an
    OpenAI-compatible server (vLLM) rewrites it, configured in `openai`."""
    timeout_seconds: float = 2.0
    """Whole budget of the enhance step; past it the user's prompt is used."""
    is_default_enabled: bool = False
    """Whether requests that do not say get enhanced."""
    openai: OpenAIEnhancerConfig = field(default_factory=OpenAIEnhancerConfig)
    """The server the `openai` backend asks."""
    limits: RewriteLimits = field(default_factory=RewriteLimits)
    """Length limits of an accepted rewrite (it must also keep every attribute the user gave)."""
    resample_attempts: int = 3
    """Further rewrites asked for, sampled at `resample_temperature`, when one is rejected
    (within `timeout_seconds`); 0 = one rewrite, then the user's prompt."""
    resample_temperature: float = 0.7
    """Sampling temperature of those further attempts."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything `vpt serve` needs."""

    server: ServerConfig = field(default_factory=ServerConfig)
    """gRPC ports, limits, auth."""
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    """Concurrency and queue."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Initial weights."""
    artifacts: ArtifactConfig = field(default_factory=ArtifactConfig)
    """Video storage."""
    events: EventConfig = field(default_factory=EventConfig)
    """Event bus."""
    enhancement: EnhancementConfig = field(default_factory=EnhancementConfig)
    """Prompt enhancement."""
    state_dir: str = "serving-state"
    """Folder of the generation/feedback records (relative paths above resolve against it)."""

    def validate(self) -> None:
        problems = []
        for name, port in (
            ("server.port", self.server.port),
            ("server.admin_port", self.server.admin_port),
        ):
            if not 0 <= port <= 65535:
                problems.append(f"{name}: must be in 0..65535, got {port}")
        if not -1 <= self.server.metrics_port <= 65535:
            problems.append(
                f"server.metrics_port: must be in -1..65535, got {self.server.metrics_port}"
            )
        if not 64 * 1024 <= self.server.max_message_bytes <= 512 * MIB:
            problems.append("server.max_message_bytes: must be in 64 KiB..512 MiB")
        if self.server.drain_seconds < 0:
            problems.append("server.drain_seconds: must be >= 0")
        if not 1 <= self.admission.max_concurrent <= 64:
            problems.append("admission.max_concurrent: must be in 1..64")
        if not 0 <= self.admission.max_queue <= 10_000:
            problems.append("admission.max_queue: must be in 0..10000")
        if not 1 <= self.model.max_prompt_chars <= 100_000:
            problems.append("model.max_prompt_chars: must be in 1..100000")
        if self.model.threads < 1:
            problems.append("model.threads: must be >= 1")
        if not 0 < self.events.timeout_seconds <= 600:
            problems.append("events.timeout_seconds: must be in (0, 600]")
        if not 0 < self.enhancement.timeout_seconds <= 600:
            problems.append("enhancement.timeout_seconds: must be in (0, 600]")
        if not 0 <= self.enhancement.resample_attempts <= 10:
            problems.append("enhancement.resample_attempts: must be in 0..10")
        if self.enhancement.resample_temperature <= 0:
            problems.append("enhancement.resample_temperature: must be > 0")
        if self.enhancement.backend == "openai":
            problems += openai_problems(self.enhancement.openai)
        if problems:
            raise ConfigError("; ".join(problems))

    def resolve(self, path: str) -> str:
        """A local path relative to `state_dir`; URLs and absolute paths unchanged."""
        if "://" in path or Path(path).is_absolute():
            return path
        return str(Path(self.state_dir) / path)


def openai_problems(openai: OpenAIEnhancerConfig) -> list[str]:
    """What is wrong with the `enhancement.openai` section (with the environment applied)."""
    problems = []
    url = openai.resolved_base_url()
    if not url.startswith(("http://", "https://")):
        source = "enhancement.openai.base_url"
        if url != openai.base_url:
            source += f" (from ${openai.base_url_env})"
        problems.append(f"{source}: must be an http:// or https:// URL, got {url!r}")
    if not openai.model.strip():
        problems.append("enhancement.openai.model: must name the served model or LoRA adapter")
    if not 1 <= openai.max_tokens <= 4096:
        problems.append(
            f"enhancement.openai.max_tokens: must be in 1..4096, got {openai.max_tokens}"
        )
    if not 0 <= openai.temperature <= 2:
        problems.append(
            f"enhancement.openai.temperature: must be in [0, 2], got {openai.temperature}"
        )
    if not 0 < openai.timeout_seconds <= 600:
        problems.append(
            f"enhancement.openai.timeout_seconds: must be in (0, 600], got {openai.timeout_seconds}"
        )
    return problems


def load_serve_config(path: str | Path | None, overrides: list[str] | None = None) -> ServeConfig:
    """Read and validate a ServeConfig from YAML (None = defaults) plus KEY=VALUE overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"serving config {file}: no such file")
        try:
            loaded = yaml.safe_load(file.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"serving config {file}: not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"serving config {file}: the top level must be a mapping")
        data = loaded or {}
    config = config_from_dict(ServeConfig, apply_overrides(data, overrides or []), "config")
    config.validate()
    return config
