"""Finished videos as artifacts: H.264 MP4 files in a local folder or any fsspec URL.

`ArtifactStore.put` writes `<base>/<generation id>.mp4` through a temporary name and renames it
into place, so a reader never finds a partial file under the final name, and returns the URI
and sha256 of the bytes. Generation ids are validated (letters, digits, `-`), so a request can
never write outside the base folder.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass

import fsspec
import numpy as np

from vpt.video_io import encode_mp4_bytes

_SAFE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


@dataclass(frozen=True)
class StoredArtifact:
    """Where a video was stored and what its bytes hash to."""

    uri: str
    sha256: str
    size_bytes: int


class ArtifactStore:
    """MP4 artifacts under one base URL (a folder path, or e.g. `memory://vpt`, `s3://bucket`)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.fs, self.base_path = fsspec.core.url_to_fs(self.base_url)
        self.fs.makedirs(self.base_path, exist_ok=True)

    def uri(self, generation_id: str) -> str:
        if not _SAFE_ID.match(generation_id):
            raise ValueError(f"generation id {generation_id!r} must be 1-64 letters, digits or -")
        return f"{self.base_url}/{generation_id}.mp4"

    def _path(self, generation_id: str) -> str:
        self.uri(generation_id)
        return f"{self.base_path}/{generation_id}.mp4"

    def put(self, generation_id: str, frames_FHWC: np.ndarray, fps: float) -> StoredArtifact:
        """Encode the frames as MP4 and store them; returns the URI and sha256."""
        data = encode_mp4_bytes(frames_FHWC, fps=fps)
        final = self._path(generation_id)
        temporary = f"{self.base_path}/.{generation_id}.{uuid.uuid4().hex}.tmp"
        with self.fs.open(temporary, "wb") as handle:
            handle.write(data)
        self.fs.mv(temporary, final)
        return StoredArtifact(
            uri=self.uri(generation_id),
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
        )

    def read(self, generation_id: str) -> bytes:
        with self.fs.open(self._path(generation_id), "rb") as handle:
            data: bytes = handle.read()
        return data
