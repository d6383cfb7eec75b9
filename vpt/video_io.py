"""Write and read videos as uint8 RGB frame arrays of shape (F, H, W, 3).

The container is chosen by the file suffix:
- `.mp4`: H.264 (libx264, yuv420p, CRF 18, `+faststart` so browsers can start playing before the
  download ends), encoded by the ffmpeg binary that imageio-ffmpeg ships. Small frames are
  upscaled by an integer factor with nearest neighbour and then padded (edge pixels repeated,
  bottom and right) to a multiple of 16 and at least 64 px a side: many players refuse or
  garble a 32x32 H.264 stream, and yuv420p needs even sizes. `mp4_layout` says what was done, so
  a reader can crop and downscale back; `read_video` returns the frames as encoded.
- `.gif`: Pillow, looping forever, one palette per frame (lossy for frames with more than 256
  colours). GIF delays are in 1/100 s, so fps above 50 is written as 50. Pillow merges identical
  consecutive frames into one longer frame; the file records the per-frame delay in a comment
  and `read_video` repeats merged frames, so the frame count survives.
- `.npy`: the raw uint8 array, bit-exact.

Every write goes to a temporary file in the destination folder, is flushed to disk, and is then
moved over `path` with `os.replace`, so a crash or an encoder error never leaves a truncated
file at `path` (an existing file there stays untouched).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageSequence

SUPPORTED_SUFFIXES = (".mp4", ".gif", ".npy")
MP4_MACRO_BLOCK = 16
"""H.264 codes 16x16 macroblocks; encoded sizes are padded to a multiple of this."""
MP4_MIN_SIDE = 64
"""Smallest encoded side; smaller videos are upscaled (nearest neighbour) and padded to it."""
MP4_MAX_AUTO_SIDE = 4096
"""The automatic scale never makes the longer side exceed this (padding then reaches the min)."""
MP4_CRF = 18
"""x264 constant rate factor: 18 is visually near-lossless."""
FILE_MODE = 0o644
"""Permissions of written files (readable by a web server or another user, as `open` gives)."""
GIF_MIN_DELAY_CS = 2
"""Shortest GIF frame delay in 1/100 s; browsers slow anything shorter down to 1/10 s."""
_GIF_COMMENT = "vpt frame_delay_ms={delay_ms}"
_GIF_COMMENT_PATTERN = re.compile(rb"vpt frame_delay_ms=(\d+)")

Mp4Scale = int | Literal["auto"]


@dataclass(frozen=True)
class Mp4Layout:
    """Where the original frames sit inside an encoded MP4 frame."""

    scale: int
    """Integer nearest-neighbour upscale factor applied to height and width."""
    height: int
    """Encoded frame height (upscaled height plus bottom padding)."""
    width: int
    """Encoded frame width (upscaled width plus right padding)."""


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def mp4_layout(height: int, width: int, scale: Mp4Scale = "auto") -> Mp4Layout:
    """The encoded size of (height, width) frames: upscale by `scale`, then pad.

    "auto" picks the smallest integer factor that brings the shorter side to MP4_MIN_SIDE,
    without letting the longer side pass MP4_MAX_AUTO_SIDE (at least 1). The padded size is a
    multiple of MP4_MACRO_BLOCK and at least MP4_MIN_SIDE. The original frames occupy
    [:height * scale, :width * scale].
    """
    if height < 1 or width < 1:
        raise ValueError(f"frames must be at least 1x1 pixels, got {height}x{width}")
    if scale == "auto":
        factor = max(1, math.ceil(MP4_MIN_SIDE / min(height, width)))
        factor = max(1, min(factor, MP4_MAX_AUTO_SIDE // max(height, width)))
    elif isinstance(scale, int) and not isinstance(scale, bool) and scale >= 1:
        factor = scale
    else:
        raise ValueError(f'scale must be "auto" or an integer >= 1, got {scale!r}')
    return Mp4Layout(
        scale=factor,
        height=max(MP4_MIN_SIDE, _round_up(height * factor, MP4_MACRO_BLOCK)),
        width=max(MP4_MIN_SIDE, _round_up(width * factor, MP4_MACRO_BLOCK)),
    )


def _check_frames(frames: object) -> np.ndarray:
    if not isinstance(frames, np.ndarray):
        raise ValueError(
            f"frames must be a numpy uint8 array of shape (F, H, W, 3), got "
            f"{type(frames).__name__} (for a torch tensor use .cpu().numpy())"
        )
    if frames.dtype != np.uint8:
        raise ValueError(
            f"frames must have dtype uint8 (0-255), got {frames.dtype}; convert floats in [0, 1] "
            f"with (frames.clip(0, 1) * 255).round().astype(np.uint8)"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(
            f"frames must have shape (F, H, W, 3) (RGB, channels last), got {frames.shape}"
        )
    if min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must hold at least one 1x1 frame, got shape {frames.shape}")
    return frames


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not 0 < fps < math.inf:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return float(fps)


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise ValueError(
            f"unsupported video suffix {path.suffix!r} in {path}; use one of "
            f"{', '.join(SUPPORTED_SUFFIXES)}"
        )
    return suffix


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


@contextmanager
def _atomic_destination(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success move it over `path`, else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(descriptor)
    temporary = Path(temporary_name)
    try:
        yield temporary
        _fsync_file(temporary)
        os.chmod(temporary, FILE_MODE)  # mkstemp creates 0o600
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _mp4_frames(frames: np.ndarray, scale: Mp4Scale) -> np.ndarray:
    _, height, width, _ = frames.shape
    layout = mp4_layout(height, width, scale)
    upscaled = frames.repeat(layout.scale, axis=1).repeat(layout.scale, axis=2)
    pad_height = layout.height - upscaled.shape[1]
    pad_width = layout.width - upscaled.shape[2]
    if pad_height or pad_width:
        upscaled = np.pad(upscaled, ((0, 0), (0, pad_height), (0, pad_width), (0, 0)), "edge")
    return np.ascontiguousarray(upscaled)


def _encode_mp4(frames: np.ndarray, fps: float, scale: Mp4Scale, destination: Path) -> None:
    """Pipe raw RGB frames into ffmpeg; raise RuntimeError with ffmpeg's message if it fails.

    ffmpeg is driven directly rather than through `imageio_ffmpeg.write_frames`, which ignores
    ffmpeg's exit status and would let a failed encode pass for a finished video.
    """
    encoded = _mp4_frames(frames, scale)
    _, height, width, _ = encoded.shape
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        str(Fraction(fps).limit_denominator(1001)),
        "-i",
        "-",
        "-an",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-crf",
        str(MP4_CRF),
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(destination),
    ]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors
        )
        assert process.stdin is not None
        try:
            for frame in encoded:
                process.stdin.write(frame.tobytes())
        except BrokenPipeError:
            pass  # ffmpeg quit early; its exit status and message explain why
        except BaseException:
            process.kill()
            process.wait()
            raise
        with suppress(BrokenPipeError):
            process.stdin.close()
        return_code = process.wait()
        if return_code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RuntimeError(
                f"ffmpeg failed to encode the H.264 video (exit status {return_code}): "
                f"{message[-2000:]}"
            )


def _write_gif(frames: np.ndarray, fps: float, destination: Path) -> None:
    delay_ms = 10 * max(GIF_MIN_DELAY_CS, round(100 / fps))
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(
        destination,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=delay_ms,
        loop=0,
        comment=_GIF_COMMENT.format(delay_ms=delay_ms),
    )


def _write_npy(frames: np.ndarray, destination: Path) -> None:
    with open(destination, "wb") as handle:
        np.save(handle, frames, allow_pickle=False)


def write_video(
    frames: np.ndarray, path: str | os.PathLike[str], fps: float = 8, scale: Mp4Scale = "auto"
) -> Path:
    """Write uint8 RGB frames (F, H, W, 3) to `path` (.mp4, .gif or .npy), atomically.

    `scale` applies to .mp4 only (see `mp4_layout`). Missing parent folders are created.
    Returns the path written. Raises ValueError naming the problem for a bad array, fps, scale
    or suffix, before anything is written.
    """
    destination = Path(path)
    suffix = _suffix(destination)
    frames = _check_frames(frames)
    fps = _check_fps(fps)
    if suffix == ".mp4":
        mp4_layout(frames.shape[1], frames.shape[2], scale)  # validates scale before writing
    writers = {
        ".mp4": lambda temporary: _encode_mp4(frames, fps, scale, temporary),
        ".gif": lambda temporary: _write_gif(frames, fps, temporary),
        ".npy": lambda temporary: _write_npy(frames, temporary),
    }
    with _atomic_destination(destination) as temporary:
        writers[suffix](temporary)
    return destination


def encode_mp4_bytes(frames: np.ndarray, fps: float = 8, scale: Mp4Scale = "auto") -> bytes:
    """Encode frames as `write_video` does for an .mp4 path and return the file's bytes.

    For streaming responses; the encoder works on a private temporary file that is removed.
    """
    frames = _check_frames(frames)
    fps = _check_fps(fps)
    mp4_layout(frames.shape[1], frames.shape[2], scale)
    with tempfile.TemporaryDirectory(prefix="vpt-mp4-") as folder:
        destination = Path(folder) / "video.mp4"
        _encode_mp4(frames, fps, scale, destination)
        return destination.read_bytes()


def _read_mp4(path: Path) -> np.ndarray:
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    try:
        metadata = next(reader)
        width, height = metadata["size"]
        frames = [
            np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3) for frame in reader
        ]
    finally:
        reader.close()
    if not frames:
        raise ValueError(f"{path} holds no video frames")
    return np.stack(frames)


def _read_gif(path: Path) -> np.ndarray:
    frames: list[np.ndarray] = []
    delays_ms: list[int] = []
    with Image.open(path) as image:
        comment = image.info.get("comment", b"")
        for frame in ImageSequence.Iterator(image):
            frames.append(np.asarray(frame.convert("RGB"), dtype=np.uint8))
            delays_ms.append(int(frame.info.get("duration", 0)))
    match = _GIF_COMMENT_PATTERN.search(comment if isinstance(comment, bytes) else b"")
    unit_ms = int(match.group(1)) if match else 0
    if unit_ms <= 0:
        # A GIF written elsewhere: take the shortest delay as one frame.
        unit_ms = min((delay for delay in delays_ms if delay > 0), default=0)
    counts = [max(1, round(delay / unit_ms)) if unit_ms else 1 for delay in delays_ms]
    return np.stack(
        [frame for frame, count in zip(frames, counts, strict=True) for _ in range(count)]
    )


def _read_npy(path: Path) -> np.ndarray:
    frames = np.load(path, allow_pickle=False)
    try:
        return _check_frames(frames)
    except ValueError as error:
        raise ValueError(f"{path} does not hold a video array: {error}") from None


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a .mp4, .gif or .npy video as uint8 RGB frames (F, H, W, 3).

    An .mp4 comes back at its encoded size (upscaled and padded, see `mp4_layout`).
    """
    source = Path(path)
    readers = {".mp4": _read_mp4, ".gif": _read_gif, ".npy": _read_npy}
    reader = readers[_suffix(source)]
    if not source.is_file():
        raise FileNotFoundError(f"no video file at {source}")
    return reader(source)
