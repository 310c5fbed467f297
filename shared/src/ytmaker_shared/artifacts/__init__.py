"""The artifact store: where stages keep the files they make (events carry URIs and sizes,
never bytes).

A store is chosen by URL (`open_store`): `file:///var/lib/ytmaker/artifacts` (a local directory,
the default), `s3://bucket/prefix` (S3 or any S3-compatible server, shared by every node: see
`artifacts/s3.py`) or `memory://name` (one process, for tests). Every adapter passes the same
contract suite (tests/unit/stageworker/test_artifacts_contract.py); the port is `port.py`.

Callers must:
- write with `put` (bytes) or `put_file` (a file already on disk, e.g. an ffmpeg output); a
  write is atomic, readers never see half a file, and returns the size and sha256;
- read with `read` (bytes), `open` / `open_range` (a binary file object the caller closes),
  `download` (into a file, streaming) or `local_file` (a path for a tool such as ffmpeg: the
  store's own file where it keeps one on this machine, else a download);
- expect `ArtifactNotFound` (a `KeyError`) for a missing key from `read`, `open` and `stat`, and
  `ArtifactStoreUnavailable` (an `OSError`) when a remote store cannot be reached.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from ytmaker_shared.artifacts.local import FileArtifactStore, MemoryArtifactStore
from ytmaker_shared.artifacts.port import (
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreUnavailable,
    InvalidKey,
    StoredObject,
    check_key,
    guess_type,
)

_MEMORY_STORES: dict[str, MemoryArtifactStore] = {}


def open_store(url: str) -> ArtifactStore:
    """The store a URL names: `file:///abs/dir`, `file://relative/dir` (from the working
    directory), a plain path, `s3://bucket/prefix` (client settings from the environment), or
    `memory://name` (the same object for the same name within a process). Raises ValueError
    for any other scheme or an s3 URL without a bucket."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.netloc + parsed.path) if parsed.scheme else url
        return FileArtifactStore(path or ".")
    if parsed.scheme == "memory":
        name = parsed.netloc or "default"
        return _MEMORY_STORES.setdefault(name, MemoryArtifactStore(name))
    if parsed.scheme == "s3":
        from ytmaker_shared.artifacts.s3 import S3ArtifactStore  # boto3 only where it is used

        try:
            return S3ArtifactStore.from_url(url)
        except InvalidKey as exc:
            raise ValueError(f"invalid artifact store {url!r}: {exc}") from None
    raise ValueError(f"unknown artifact store {url!r}: use file://, s3:// or memory://")


__all__ = [
    "ArtifactNotFound",
    "ArtifactStore",
    "ArtifactStoreUnavailable",
    "FileArtifactStore",
    "InvalidKey",
    "MemoryArtifactStore",
    "StoredObject",
    "check_key",
    "guess_type",
    "open_store",
]
