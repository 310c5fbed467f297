"""The artifact store port: keys, stored objects, errors, and what every adapter implements.

Keys are relative, slash-separated paths such as `"<task_id>/images/segment-01.png"`; a key
made of anything but letters, digits, `._-` and `/` segments (no `..`, no leading `/`) raises
`InvalidKey`. A URI is the store's own name for a key (`store.uri(key)`); `store.key(uri)` goes
back and raises `InvalidKey` for a URI of another store.
"""

from __future__ import annotations

import asyncio
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

from ytmaker_shared.events import Artifact

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
CHUNK = 1 << 20


class InvalidKey(ValueError):
    """A key or URI that this store cannot name."""


class ArtifactNotFound(KeyError):
    """No artifact under this key."""


class ArtifactStoreUnavailable(OSError):
    """The store could not be reached or refused the request (network, credentials, a missing
    bucket): a transient failure for the caller, never a missing artifact."""


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


class _Window(io.RawIOBase):
    """At most `length` bytes of `source` from where it stands (closes `source` with itself)."""

    def __init__(self, source: BinaryIO, length: int) -> None:
        self._source = source
        self._left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            return 0
        data = self._source.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def close(self) -> None:
        self._source.close()
        super().close()


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
        """A binary file object for reading (blocking: call it from a thread in async code);
        the caller closes it. Raises ArtifactNotFound."""

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

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """Bytes `start..end` (both inclusive, within the object) of `key`, as a binary file
        object the caller reads and closes; blocking like `open`. Raises ArtifactNotFound."""
        source = self.open(key)
        try:
            source.seek(start)
        except BaseException:
            source.close()
            raise
        return io.BufferedReader(_Window(source, end - start + 1), CHUNK)

    async def download(self, key: str, target: Path) -> Path:
        """Write the object under `key` into the file `target` (replaced atomically), streaming:
        never the whole object in memory. Raises ArtifactNotFound."""

        def copy() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            try:
                with self.open(key) as source, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        await asyncio.to_thread(copy)
        return target

    async def local_file(self, key: str, directory: Path, name: str | None = None) -> Path:
        """A file on this machine that holds `key`, for tools that want a path (ffmpeg, an
        upload): the store's own file when it keeps one (read it, never change or delete it),
        else a download into `directory/name` (default: the key's last segment) that the caller
        removes with `directory`. Raises ArtifactNotFound."""
        path = self.local_path(key)
        if path is not None and path.is_file():
            return path
        file_name = key.rsplit("/", 1)[-1] if name is None else name
        if file_name in ("", ".", "..") or any(c in file_name for c in "/\\\x00"):
            raise InvalidKey(f"not a file name: {file_name!r}")  # it may come from an event
        return await self.download(key, directory / file_name)

    async def delete_prefix(self, prefix: str) -> int:
        """Remove every key under `prefix`; returns how many. `prefix` must end with `/`."""
        if not prefix.endswith("/"):
            raise InvalidKey(f"a prefix to delete must end with '/': {prefix!r}")
        keys = await self.list(prefix)
        for key in keys:
            await self.delete(key)
        return len(keys)

    def task_key(self, uri: str, task_id: str) -> str:
        """The key a URI names, when it is one of `task_id`'s artifacts (under `<task_id>/`);
        raises InvalidKey otherwise: an event of one task never makes a stage read another's
        script or video."""
        key = self.key(uri)
        if not key.startswith(f"{task_id}/"):
            raise InvalidKey(f"{uri} is not an artifact of task {task_id}")
        return key

    async def read_uri(self, uri: str, *, task_id: str) -> bytes:
        """The bytes of `task_id`'s artifact a URI of this store names; raises InvalidKey or
        ArtifactNotFound."""
        return await self.read(self.task_key(uri, task_id))
