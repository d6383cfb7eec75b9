"""`vpt serve` and `vpt client ...`, registered through the `vpt.commands` entry point.

Only argparse is imported at module level: the `vpt` CLI loads this module to build its parser,
and the service's dependencies (grpc, torch, protos) load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def cmd_serve(args: argparse.Namespace) -> None:
    import asyncio
    import logging

    from serving.config import load_serve_config
    from serving.models import StagingError
    from serving.server import serve
    from vpt.config import ConfigError

    overrides = list(args.set or [])
    for flag, key in (
        ("host", "server.host"),
        ("port", "server.port"),
        ("admin_port", "server.admin_port"),
        ("metrics_port", "server.metrics_port"),
        ("model", "model.path"),
        ("state_dir", "state_dir"),
        ("events", "events.backend"),
        ("kafka_bootstrap", "events.kafka_bootstrap"),
        ("artifacts", "artifacts.url"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={json.dumps(value) if isinstance(value, str) else value}")
    try:
        config = load_serve_config(args.config, overrides)
    except ConfigError as error:
        _fail(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(config))
    except StagingError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"cannot start the server: {error}")


def _client(args: argparse.Namespace) -> Any:
    from serving.client import VideoClient

    return VideoClient(
        args.target, api_key=args.api_key or os.environ.get("VPT_API_KEY"), timeout=args.timeout
    )


def _run_client(func: Any, args: argparse.Namespace) -> None:
    from serving.client import VptError

    try:
        func(args)
    except VptError as error:
        _fail(str(error))
    except ValueError as error:
        _fail(str(error))


def cmd_client_generate(args: argparse.Namespace) -> None:
    def run(args: argparse.Namespace) -> None:
        from serving.protos import types_pb

        with _client(args) as client:
            chunks = 0

            def on_chunk(chunk: Any) -> None:
                nonlocal chunks
                chunks += 1
                print(
                    f"chunk {chunk.sequence}: frames {chunk.first_frame_index}.."
                    f"{chunk.first_frame_index + chunk.num_frames - 1}",
                    file=sys.stderr,
                )

            result = client.generate(
                args.prompt,
                seed=args.seed,
                steps=args.steps or 0,
                guidance=args.guidance,
                frames_per_chunk=args.frames_per_chunk,
                enhance=args.enhance,
                strict=args.strict,
                on_chunk=on_chunk,
            )
            out = result.write_mp4(args.out) if args.out else None
            print(
                json.dumps(
                    {
                        "generation_id": result.generation_id,
                        "model_version": result.model_version,
                        "seed": result.seed,
                        "prompt": result.started.prompt,
                        "effective_prompt": result.started.effective_prompt,
                        "prompt_enhancement": types_pb.PromptEnhancementResult.Name(
                            result.started.prompt_enhancement_result
                        ),
                        "chunks": chunks,
                        "frames": result.completed.total_frames,
                        "artifact_uri": result.completed.artifact_uri,
                        "artifact_sha256": result.completed.artifact_sha256,
                        "time_to_first_chunk_seconds": round(result.time_to_first_chunk_seconds, 4),
                        "duration_seconds": round(result.duration_seconds, 4),
                        "out": str(out) if out else None,
                    }
                )
            )

    _run_client(run, args)


def cmd_client_feedback(args: argparse.Namespace) -> None:
    def run(args: argparse.Namespace) -> None:
        from serving.client import PairwiseFeedback

        signal: dict[str, Any] = {}
        if args.rating is not None:
            signal["rating"] = args.rating
        if args.thumbs is not None:
            signal["thumbs_up"] = args.thumbs == "up"
        if args.versus is not None:
            preferences = dict(item.split("=", 1) for item in args.prefer or ["overall=same"])
            signal["pairwise"] = PairwiseFeedback(args.versus, preferences)
        with _client(args) as client:
            response = client.submit_feedback(
                args.generation_id, feedback_id=args.feedback_id, comment=args.comment, **signal
            )
        print(json.dumps({"event_id": response.event_id, "duplicate": response.is_duplicate}))

    _run_client(run, args)


def cmd_client_status(args: argparse.Namespace) -> None:
    def run(args: argparse.Namespace) -> None:
        from google.protobuf.json_format import MessageToDict

        with _client(args) as client:
            response = client.get_generation(args.generation_id)
        print(json.dumps(MessageToDict(response), indent=2))

    _run_client(run, args)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `serve` and `client` to the vpt CLI."""
    serve = commands.add_parser("serve", help="run the gRPC generation service")
    serve.add_argument("--config", help="YAML serving config (see docs/serving.md)")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="public port (default 50051; 0 = any)")
    serve.add_argument("--admin-port", type=int, help="admin port (default 50052; 0 = any)")
    serve.add_argument("--metrics-port", type=int, help="Prometheus port (default 9464; -1 off)")
    serve.add_argument("--model", help="checkpoint folder (default: the shipped model)")
    serve.add_argument("--state-dir", help="folder for records, event log and artifacts")
    serve.add_argument("--events", choices=["sqlite", "kafka"], help="event bus backend")
    serve.add_argument("--kafka-bootstrap", help="Kafka bootstrap servers")
    serve.add_argument("--artifacts", help="artifact folder or fsspec URL")
    serve.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a config value"
    )
    serve.set_defaults(func=cmd_serve)

    client = commands.add_parser("client", help="call a running generation service")
    client.add_argument("--target", default="127.0.0.1:50051", help="host:port of the service")
    client.add_argument("--api-key", help="API key (default $VPT_API_KEY)")
    client.add_argument("--timeout", type=float, default=120.0, help="deadline in seconds")
    client_commands = client.add_subparsers(dest="client_command", required=True)

    generate = client_commands.add_parser("generate", help="generate a video, stream it")
    generate.add_argument("--prompt", required=True)
    generate.add_argument("--seed", type=int, help="noise seed (default: server draws one)")
    generate.add_argument("--steps", type=int, help="denoising steps (model default)")
    generate.add_argument("--guidance", type=float, help="CFG scale (model default)")
    generate.add_argument("--frames-per-chunk", type=int, default=0)
    generate.add_argument("--out", help="write the video here (.mp4)")
    generate.add_argument("--strict", action="store_true", help="refuse unknown prompt words")
    generate.add_argument(
        "--enhance",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for prompt enhancement (server default if not given)",
    )
    generate.set_defaults(func=cmd_client_generate)

    feedback = client_commands.add_parser("feedback", help="rate a generation")
    feedback.add_argument("generation_id")
    feedback.add_argument("--feedback-id", help="idempotency id (default: random)")
    signals = feedback.add_mutually_exclusive_group(required=True)
    signals.add_argument("--rating", type=int, help="1..5 stars")
    signals.add_argument("--thumbs", choices=["up", "down"])
    signals.add_argument("--versus", metavar="OTHER_ID", help="pairwise against this generation")
    feedback.add_argument(
        "--prefer",
        action="append",
        metavar="DIMENSION=good|same|bad",
        help="with --versus: e.g. --prefer motion=good --prefer visual=same",
    )
    feedback.add_argument("--comment", default="")
    feedback.set_defaults(func=cmd_client_feedback)

    status = client_commands.add_parser("status", help="status and artifact of a generation")
    status.add_argument("generation_id")
    status.set_defaults(func=cmd_client_status)
