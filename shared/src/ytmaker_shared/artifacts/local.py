"""The local adapters of the artifact store: a directory (`file://`) and a dict (`memory://`)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from ytmaker_shared.artifacts.port import (
    CHUNK,
    ArtifactNotFound,
    ArtifactStore,
    InvalidKey,
    StoredObject,
    check_key,
    guess_type,
)


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
                while chunk := source.read(CHUNK):
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
                while chunk := f.read(CHUNK):
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
