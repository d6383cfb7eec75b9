import os
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

import vpt.video_io as video_io
from vpt.video_io import Mp4Layout, encode_mp4_bytes, mp4_layout, read_video, write_video


def _smooth_video(frames: int = 12, height: int = 32, width: int = 48) -> np.ndarray:
    """A moving colour gradient: the kind of content H.264 keeps almost exactly."""
    rows, columns = np.mgrid[0:height, 0:width]
    video = [
        np.stack(
            [
                (columns * 4 + 6 * index) % 256,
                (rows * 6 + 3 * index) % 256,
                np.full_like(rows, 100 + 5 * index),
            ],
            axis=-1,
        )
        for index in range(frames)
    ]
    return np.stack(video).astype(np.uint8)


def _palette_video(frames: int = 6, height: int = 17, width: int = 23) -> np.ndarray:
    """Random pixels from a 16-colour palette (fits a GIF palette exactly)."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    return palette[rng.integers(0, 16, size=(frames, height, width))]


def _undo_mp4_layout(decoded: np.ndarray, height: int, width: int) -> np.ndarray:
    layout = mp4_layout(height, width)
    assert decoded.shape[1:3] == (layout.height, layout.width)
    k = layout.scale
    cropped = decoded[:, : height * k, : width * k].astype(np.float64)
    return cropped.reshape(decoded.shape[0], height, k, width, k, 3).mean(axis=(2, 4))


def test_npy_round_trip_is_exact(tmp_path: Path) -> None:
    video = np.random.default_rng(1).integers(0, 256, size=(5, 7, 9, 3), dtype=np.uint8)
    path = write_video(video, tmp_path / "clip.npy")
    assert path == tmp_path / "clip.npy"
    loaded = read_video(path)
    assert loaded.dtype == np.uint8
    assert np.array_equal(loaded, video)


def test_gif_round_trip_is_exact_for_a_small_palette(tmp_path: Path) -> None:
    video = _palette_video()
    loaded = read_video(write_video(video, tmp_path / "clip.gif", fps=10))
    assert loaded.shape == video.shape
    assert np.array_equal(loaded, video)


def test_gif_round_trip_is_close_for_natural_colours(tmp_path: Path) -> None:
    video = _smooth_video()
    loaded = read_video(write_video(video, tmp_path / "clip.gif"))
    assert loaded.shape == video.shape
    assert np.abs(loaded.astype(np.int16) - video).mean() < 3.0


def test_gif_keeps_frame_count_when_frames_repeat(tmp_path: Path) -> None:
    # Pillow merges identical consecutive frames; read_video must expand them again.
    palette_video = _palette_video(frames=3)
    video = palette_video[[0, 0, 1, 1, 1, 2, 0, 0]]
    loaded = read_video(write_video(video, tmp_path / "repeats.gif", fps=8))
    assert np.array_equal(loaded, video)
    static = np.repeat(palette_video[:1], 4, axis=0)
    assert np.array_equal(read_video(write_video(static, tmp_path / "static.gif")), static)


def test_gif_loops_forever_at_the_requested_rate(tmp_path: Path) -> None:
    path = write_video(_palette_video(), tmp_path / "clip.gif", fps=4)
    with Image.open(path) as image:
        assert image.info["loop"] == 0
        assert image.info["duration"] == 250


def test_read_gif_written_elsewhere(tmp_path: Path) -> None:
    video = _palette_video(frames=3)
    images = [Image.fromarray(frame) for frame in video]
    images[0].save(tmp_path / "foreign.gif", save_all=True, append_images=images[1:], duration=50)
    assert np.array_equal(read_video(tmp_path / "foreign.gif"), video)


@pytest.mark.parametrize(
    ("height", "width", "max_error"),
    # Upscaled frames survive yuv420p chroma subsampling better than native-size ones.
    [(32, 48, 2.5), (17, 23, 2.5), (1, 1, 2.5), (64, 80, 6.0)],
)
def test_mp4_round_trip_is_close_after_undoing_the_layout(
    tmp_path: Path, height: int, width: int, max_error: float
) -> None:
    video = _smooth_video(frames=10, height=height, width=width)
    decoded = read_video(write_video(video, tmp_path / "clip.mp4", fps=8))
    assert decoded.dtype == np.uint8 and decoded.shape[0] == 10
    restored = _undo_mp4_layout(decoded, height, width)
    assert np.abs(restored - video).mean() < max_error


def test_mp4_is_h264_yuv420p_at_the_requested_rate(tmp_path: Path) -> None:
    path = write_video(_smooth_video(), tmp_path / "clip.mp4", fps=12)
    reader = imageio_ffmpeg.read_frames(str(path))
    metadata = next(reader)
    reader.close()
    assert metadata["codec"].startswith("h264")
    assert metadata["fps"] == pytest.approx(12)
    assert tuple(metadata["size"]) == (96, 64)  # (width, height): 48x32 at scale 2


def test_mp4_layout() -> None:
    assert mp4_layout(480, 832) == Mp4Layout(scale=1, height=480, width=832)
    assert mp4_layout(32, 32) == Mp4Layout(scale=2, height=64, width=64)
    assert mp4_layout(17, 23) == Mp4Layout(scale=4, height=80, width=96)
    assert mp4_layout(1, 1) == Mp4Layout(scale=64, height=64, width=64)
    assert mp4_layout(33, 50, scale=1) == Mp4Layout(scale=1, height=64, width=64)
    assert mp4_layout(90, 130, scale=1) == Mp4Layout(scale=1, height=96, width=144)
    # A long thin strip is not upscaled past the size cap; padding brings it to 64.
    assert mp4_layout(4, 3000) == Mp4Layout(scale=1, height=64, width=3008)
    for scale in (0, -1, 1.5, True, "big"):
        with pytest.raises(ValueError, match="scale must be"):
            mp4_layout(8, 8, scale)  # type: ignore[arg-type]


def test_explicit_scale_is_used(tmp_path: Path) -> None:
    video = _smooth_video(frames=4, height=16, width=16)
    decoded = read_video(write_video(video, tmp_path / "clip.mp4", scale=8))
    assert decoded.shape == (4, 128, 128, 3)


def test_encode_mp4_bytes_decodes_like_the_file(tmp_path: Path) -> None:
    video = _smooth_video(frames=6)
    data = encode_mp4_bytes(video, fps=8)
    assert data[4:8] == b"ftyp"
    (tmp_path / "from_bytes.mp4").write_bytes(data)
    from_bytes = read_video(tmp_path / "from_bytes.mp4")
    from_file = read_video(write_video(video, tmp_path / "from_file.mp4", fps=8))
    assert from_bytes.shape == from_file.shape
    assert np.abs(from_bytes.astype(np.int16) - from_file).max() <= 2


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((2, 8, 8, 3), dtype=np.float32), "dtype uint8"),
        (np.zeros((8, 8, 3), dtype=np.uint8), r"shape \(F, H, W, 3\)"),
        (np.zeros((2, 8, 8, 4), dtype=np.uint8), r"shape \(F, H, W, 3\)"),
        (np.zeros((2, 3, 8, 8), dtype=np.uint8), r"shape \(F, H, W, 3\)"),
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), "at least one"),
        ([[[[0, 0, 0]]]], "numpy uint8 array"),
    ],
)
def test_bad_frames_raise_before_writing(tmp_path: Path, frames: object, message: str) -> None:
    for suffix in (".mp4", ".gif", ".npy"):
        with pytest.raises(ValueError, match=message):
            write_video(frames, tmp_path / f"bad{suffix}")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        encode_mp4_bytes(frames)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_bad_suffix_fps_and_scale_raise(tmp_path: Path) -> None:
    video = _palette_video()
    with pytest.raises(ValueError, match=r"unsupported video suffix '\.avi'.*\.mp4, \.gif, \.npy"):
        write_video(video, tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="unsupported video suffix"):
        read_video(tmp_path / "clip")
    for fps in (0, -8, float("nan"), float("inf"), "8"):
        with pytest.raises(ValueError, match="fps must be a positive finite number"):
            write_video(video, tmp_path / "clip.gif", fps=fps)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale must be"):
        write_video(video, tmp_path / "clip.mp4", scale=0)
    assert list(tmp_path.iterdir()) == []


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no video file"):
        read_video(tmp_path / "missing.mp4")
    np.save(tmp_path / "not_video.npy", np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="does not hold a video array"):
        read_video(tmp_path / "not_video.npy")


def test_uppercase_suffix_and_missing_parent_folders(tmp_path: Path) -> None:
    video = _palette_video()
    path = write_video(video, tmp_path / "a" / "b" / "CLIP.NPY")
    assert np.array_equal(read_video(path), video)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("suffix", [".mp4", ".gif", ".npy"])
def test_failed_encoding_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    def fail_midway(destination: Path, *args: object, **kwargs: object) -> None:
        Path(destination).write_bytes(b"half a video")
        raise RuntimeError("encoder crashed")

    monkeypatch.setattr(video_io, "_encode_mp4", lambda f, fps, s, d: fail_midway(d))
    monkeypatch.setattr(video_io, "_write_gif", lambda f, fps, d: fail_midway(d))
    monkeypatch.setattr(video_io, "_write_npy", lambda f, d: fail_midway(d))
    with pytest.raises(RuntimeError, match="encoder crashed"):
        write_video(_palette_video(), tmp_path / f"clip{suffix}")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _palette_video(frames=2)
    path = write_video(old, tmp_path / "clip.npy")

    def crash_on_replace(source: object, destination: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash_on_replace)
    with pytest.raises(OSError, match="power cut"):
        write_video(_palette_video(frames=5), path)
    assert [entry.name for entry in tmp_path.iterdir()] == ["clip.npy"]
    assert np.array_equal(read_video(path), old)


def test_ffmpeg_failure_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real encoder error: hand ffmpeg an unparsable rate factor.
    monkeypatch.setattr(video_io, "MP4_CRF", "not-a-number")
    with pytest.raises(RuntimeError, match=r"(?s)ffmpeg failed to encode the H.264 video.*crf"):
        write_video(_smooth_video(frames=4), tmp_path / "clip.mp4")
    assert list(tmp_path.iterdir()) == []
