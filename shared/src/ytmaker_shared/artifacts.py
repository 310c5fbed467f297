"""The artifact store: where stages keep the files they make (events carry URIs and sizes,
never bytes).

A store is chosen by URL (`open_store`): `file:///var/lib/ytmaker/artifacts` (a local directory,
the default) or `memory://name` (one process, for tests). Every adapter passes the same contract
suite (shared/tests/test_artifacts_contract.py).

Keys are relative, slash-separated paths such as `"<task_id>/images/segment-01.png"`; a key
made of anything but letters, digits, `._-` and `/` segments (no `..`, no leading `/`) raises
`InvalidKey`. A URI is the store's own name for a key (`store.uri(key)`); `store.key(uri)` goes
back and raises `InvalidKey` for a URI of another store.

Callers must:
- write with `put` (bytes) or `put_file` (a file already on disk, e.g. an ffmpeg output); a
  write is atomic, readers never see half a file, and returns the size and sha256;
- read with `read` (bytes), `open` (a binary file object the caller closes) or `local_path`
  (a file path where the store has one, e.g. to serve it or hand it to ffmpeg);
- expect `ArtifactNotFound` (a `KeyError`) for a missing key from `read`, `open` and `stat`.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import mimetypes
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ytmaker_shared.events import Artifact

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
_CHUNK = 1 << 20


class InvalidKey(ValueError):
    """A key or URI that this store cannot name."""


class ArtifactNotFound(KeyError):
    """No artifact under this key."""


@dataclass(frozen=True)
class StoredObject:
    """What a store holds under one key."""

    key: str
    uri: str
    size: int
    sha256: str
    content_type: str

    def artifact(self, name: str | None = None) -> Artifact:
        """The event payload form; `name` defaults to the key's last segment."""
        return Artifact(
            name=name or self.key.rsplit("/", 1)[-1],
            uri=self.uri,
            size=self.size,
            sha256=self.sha256,
            content_type=self.content_type,
        )


def check_key(key: str) -> str:
    """Return `key` if it is a valid relative key; raises InvalidKey."""
    parts = key.split("/")
    if not key or len(key) > 1000 or any(not _SEGMENT.match(p) or p in {".", ".."} for p in parts):
        raise InvalidKey(f"invalid artifact key {key!r}: use a/b/c.ext with [A-Za-z0-9._-]")
    return key


def guess_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


class ArtifactStore(ABC):
    """The port. Adapters implement the abstract methods; keys are checked by the caller side
    (`check_key`) in every public method."""

    scheme: str

    @abstractmethod
    def uri(self, key: str) -> str:
        """The URI that names `key` in events."""

    @abstractmethod
    def key(self, uri: str) -> str:
        """The key a URI of this store names; raises InvalidKey for a foreign URI."""

    @abstractmethod
    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject:
        """Store `data` under `key`, replacing what was there."""

    @abstractmethod
    async def put_file(
        self, key: str, source: Path, content_type: str | None = None
    ) -> StoredObject:
        """Store the file at `source` under `key` (the source is left in place)."""

    @abstractmethod
    async def read(self, key: str) -> bytes:
        """The bytes under `key`; raises ArtifactNotFound."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A binary file object for reading; the caller closes it. Raises ArtifactNotFound."""

    @abstractmethod
    async def stat(self, key: str) -> StoredObject:
        """Size, sha256 and content type of `key`; raises ArtifactNotFound."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove `key`; True if it existed. Deleting a missing key is not an error."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[str]:
        """Every key that starts with `prefix` (a key prefix, e.g. `"task-1/images/"`), sorted."""

    def local_path(self, key: str) -> Path | None:
        """The file that holds `key` where the store keeps files on this machine, else None."""
        return None

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key under `prefix`; returns how many. `prefix` must end with `/`."""
        if not prefix.endswith("/"):
            raise InvalidKey(f"a prefix to delete must end with '/': {prefix!r}")
        keys = await self.list(prefix)
        for key in keys:
            await self.delete(key)
        return len(keys)

    async def read_uri(self, uri: str) -> bytes:
        """The bytes a URI of this store names; raises InvalidKey or ArtifactNotFound."""
        return await self.read(self.key(uri))


class FileArtifactStore(ArtifactStore):
    """Artifacts as files under a root directory; URIs are `file:///abs/root/key`."""

    scheme = "file"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def key(self, uri: str) -> str:
        parsed = urlparse(uri)
        if parsed.scheme != "file":
            raise InvalidKey(f"not a file URI: {uri!r}")
        path = Path(unquote(parsed.path))
        try:
            relative = path.relative_to(self.root)
        except ValueError:
            raise InvalidKey(f"{uri!r} is outside the artifact root {self.root}") from None
        return check_key(relative.as_posix())

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject:
        return await asyncio.to_thread(self._write, key, io.BytesIO(data), content_type)

    async def put_file(
        self, key: str, source: Path, content_type: str | None = None
    ) -> StoredObject:
        def copy() -> StoredObject:
            with open(source, "rb") as f:
                return self._write(key, f, content_type)

        return await asyncio.to_thread(copy)

    def _write(self, key: str, source: BinaryIO, content_type: str | None) -> StoredObject:
        """Copy into a temporary file beside the target, then rename: atomic for readers."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredObject(
            key, self.uri(key), size, digest.hexdigest(), content_type or guess_type(key)
        )

    async def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise ArtifactNotFound(key) from None

    def open(self, key: str) -> BinaryIO:
        path = self._path(key)
        if not path.is_file():
            raise ArtifactNotFound(key)
        return open(path, "rb")

    async def stat(self, key: str) -> StoredObject:
        path = self._path(key)

        def digest() -> StoredObject:
            if not path.is_file():
                raise ArtifactNotFound(key)
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            return StoredObject(
                key, self.uri(key), path.stat().st_size, h.hexdigest(), guess_type(key)
            )

        return await asyncio.to_thread(digest)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    async def list(self, prefix: str = "") -> list[str]:
        def walk() -> list[str]:
            keys = []
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    if name.startswith(".tmp-"):
                        continue
                    key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def delete_prefix(self, prefix: str) -> int:
        count = await super().delete_prefix(prefix)
        folder = self.root / prefix.rstrip("/")
        if folder != self.root and folder.is_dir():
            await asyncio.to_thread(shutil.rmtree, folder, True)
        return count


class MemoryArtifactStore(ArtifactStore):
    """Artifacts in a dict, for tests; URIs are `memory://<name>/key`."""

    scheme = "memory"

    def __init__(self, name: str = "default") -> None:
        self.name = name
        self._objects: dict[str, tuple[bytes, StoredObject]] = {}

    def uri(self, key: str) -> str:
        return f"memory://{self.name}/{check_key(key)}"

    def key(self, uri: str) -> str:
        prefix = f"memory://{self.name}/"
        if not uri.startswith(prefix):
            raise InvalidKey(f"{uri!r} is not in memory store {self.name!r}")
        return check_key(uri[len(prefix) :])

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject:
        stored = StoredObject(
            key,
            self.uri(key),
            len(data),
            hashlib.sha256(data).hexdigest(),
            content_type or guess_type(key),
        )
        self._objects[key] = (bytes(data), stored)
        return stored

    async def put_file(
        self, key: str, source: Path, content_type: str | None = None
    ) -> StoredObject:
        return await self.put(key, await asyncio.to_thread(Path(source).read_bytes), content_type)

    def _get(self, key: str) -> tuple[bytes, StoredObject]:
        try:
            return self._objects[check_key(key)]
        except KeyError:
            raise ArtifactNotFound(key) from None

    async def read(self, key: str) -> bytes:
        return self._get(key)[0]

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self._get(key)[0])

    async def stat(self, key: str) -> StoredObject:
        return self._get(key)[1]

    async def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    async def delete(self, key: str) -> bool:
        return self._objects.pop(check_key(key), None) is not None

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._objects if k.startswith(prefix))


_MEMORY_STORES: dict[str, MemoryArtifactStore] = {}


def open_store(url: str) -> ArtifactStore:
    """The store a URL names: `file:///abs/dir`, `file://relative/dir` (from the working
    directory), a plain path, or `memory://name` (the same object for the same name within a
    process). Raises ValueError for any other scheme."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.netloc + parsed.path) if parsed.scheme else url
        return FileArtifactStore(Path(path or "."))
    if parsed.scheme == "memory":
        name = parsed.netloc or "default"
        return _MEMORY_STORES.setdefault(name, MemoryArtifactStore(name))
    raise ValueError(f"unknown artifact store {url!r}: use file:// or memory://")
