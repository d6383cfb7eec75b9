"""Request validation: wire messages in, resolved settings out, or a `RequestError` naming a field.

Nothing here chooses a gRPC status: the servicer maps `RequestError` to INVALID_ARGUMENT.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, replace

from serving.models import ResidentModel
from serving.protos import pb, types_pb
from vpt.generator import SamplerSettings
from vpt.world import parse_prompt

MAX_SEED = 2**63 - 1
MAX_FPS = 120
MAX_COMMENT_CHARS = 2000
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestError(ValueError):
    """A request field is invalid; the message starts with the field's name."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class ResolvedRequest:
    """A validated GenerateVideo request with every default filled in."""

    prompt: str
    seed: int
    sampler: SamplerSettings
    frames_per_chunk: int
    fps: int
    output_format: int
    is_enhancement_requested: bool


def _exact(field: str, value: int, expected: int, what: str) -> None:
    if value not in (0, expected):
        raise RequestError(
            field, f"the model generates exactly {expected} {what}, got {value} (0 = default)"
        )


def validate_generate(
    request: pb.GenerateVideoRequest,
    model: ResidentModel,
    max_prompt_chars: int,
    is_enhancement_default: bool,
) -> ResolvedRequest:
    """Check a GenerateVideoRequest against the model's contract and resolve its defaults."""
    geometry = model.geometry
    defaults = model.streamer.default_sampler
    prompt = request.prompt
    if not prompt.strip():
        raise RequestError("prompt", "is empty; describe the video, e.g. 'red circle moving left'")
    if len(prompt) > max_prompt_chars:
        raise RequestError("prompt", f"has {len(prompt)} characters, at most {max_prompt_chars}")
    if request.strict:
        parsed = parse_prompt(prompt)
        if parsed.unknown_words:
            words = ", ".join(repr(w) for w in parsed.unknown_words[:10])
            raise RequestError("prompt", f"unknown word(s) {words} (strict)")
        if parsed.conflicts:
            raise RequestError("prompt", f"conflicting words: {'; '.join(parsed.conflicts)}")
    params = request.params
    _exact("params.num_frames", params.num_frames, geometry.frames, "frames")
    _exact("params.height", params.height, geometry.height, "pixels of height")
    _exact("params.width", params.width, geometry.width, "pixels of width")
    if params.num_steps > model.max_steps:
        raise RequestError(
            "params.num_steps",
            f"must be in 1..{model.max_steps} (0 = default), got {params.num_steps}",
        )
    guidance = defaults.guidance_scale
    if params.HasField("guidance_scale"):
        guidance = params.guidance_scale
        if not math.isfinite(guidance) or not 0 <= guidance <= 50:
            raise RequestError("params.guidance_scale", f"must be in 0..50, got {guidance}")
        if not model.is_guidance_supported and guidance != defaults.guidance_scale:
            raise RequestError(
                "params.guidance_scale",
                f"model {model.identity.version} samples without classifier-free guidance; "
                "leave it unset",
            )
    if params.frames_per_chunk > geometry.frames:
        raise RequestError(
            "params.frames_per_chunk",
            f"must be in 0..{geometry.frames} (0 = whole video), got {params.frames_per_chunk}",
        )
    if params.fps > MAX_FPS:
        raise RequestError("params.fps", f"must be in 1..{MAX_FPS} (0 = default), got {params.fps}")
    if params.HasField("seed"):
        seed = params.seed
        if seed > MAX_SEED:
            raise RequestError("params.seed", f"must be in 0..2^63-1, got {seed}")
    else:
        seed = secrets.randbelow(MAX_SEED + 1)
    output_format = request.output_format or types_pb.OUTPUT_FORMAT_RAW_RGB
    if output_format not in types_pb.OutputFormat.values():
        raise RequestError("output_format", f"unknown value {request.output_format}")
    enhancement = request.prompt_enhancement
    if enhancement not in pb.PromptEnhancement.values():
        raise RequestError("prompt_enhancement", f"unknown value {enhancement}")
    is_enhanced = {
        pb.PROMPT_ENHANCEMENT_UNSPECIFIED: is_enhancement_default,
        pb.PROMPT_ENHANCEMENT_ENABLED: True,
        pb.PROMPT_ENHANCEMENT_DISABLED: False,
    }[enhancement]
    sampler = replace(
        defaults, num_steps=params.num_steps or defaults.num_steps, guidance_scale=guidance
    )
    return ResolvedRequest(
        prompt=prompt,
        seed=seed,
        sampler=sampler,
        frames_per_chunk=params.frames_per_chunk,
        fps=params.fps or geometry.fps,
        output_format=output_format,
        is_enhancement_requested=is_enhanced,
    )


def validate_id(field: str, value: str) -> str:
    if not _ID.match(value):
        raise RequestError(field, "must be 1-128 characters of letters, digits, '.', '_', ':', '-'")
    return value


def validate_feedback(feedback: types_pb.Feedback) -> None:
    """Check the shape of a Feedback message (existence of generations is the caller's job)."""
    validate_id("feedback.feedback_id", feedback.feedback_id)
    validate_id("feedback.generation_id", feedback.generation_id)
    signal = feedback.WhichOneof("signal")
    if signal is None:
        raise RequestError("feedback.signal", "set one of rating, thumbs or pairwise")
    if signal == "rating" and not 1 <= feedback.rating.stars <= 5:
        raise RequestError("feedback.rating.stars", f"must be 1..5, got {feedback.rating.stars}")
    if signal == "pairwise":
        pairwise = feedback.pairwise
        validate_id("feedback.pairwise.other_generation_id", pairwise.other_generation_id)
        if pairwise.other_generation_id == feedback.generation_id:
            raise RequestError(
                "feedback.pairwise.other_generation_id", "must differ from generation_id"
            )
        if not pairwise.preferences:
            raise RequestError("feedback.pairwise.preferences", "give at least one dimension")
        seen = set()
        for index, item in enumerate(pairwise.preferences):
            where = f"feedback.pairwise.preferences[{index}]"
            if item.dimension not in types_pb.Dimension.values() or not item.dimension:
                raise RequestError(f"{where}.dimension", "must be a known, specified dimension")
            if item.preference not in types_pb.Preference.values() or not item.preference:
                raise RequestError(f"{where}.preference", "must be GOOD, SAME or BAD")
            if item.dimension in seen:
                raise RequestError(f"{where}.dimension", "appears more than once")
            seen.add(item.dimension)
    if len(feedback.comment) > MAX_COMMENT_CHARS:
        raise RequestError("feedback.comment", f"has more than {MAX_COMMENT_CHARS} characters")
