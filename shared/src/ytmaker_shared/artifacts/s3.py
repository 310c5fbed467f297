"""The S3 adapter of the artifact store: `s3://bucket/prefix`, on AWS S3 or any S3-compatible
server (MinIO, Ceph, moto), through boto3 (docs/decisions/0071-s3-artifact-store.md).

Where the server is and who we are come from boto3's own environment, never from the URL:
`AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) for a server other than AWS (then path-style
addressing, which every S3-compatible server understands), `AWS_REGION`, and the credentials
of boto3's chain (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, a web identity token, an
instance role). The bucket must exist; the store never creates one.

Objects are written whole or not at all (S3 shows a PUT or a completed multipart upload
atomically); files of `part_size` bytes or more go up as a multipart upload in parts of that
size. The sha256 travels as object metadata (`x-amz-meta-sha256`), so `stat` is one HEAD.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
from pathlib import Path
from typing import Any, BinaryIO, cast
from urllib.parse import urlparse

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ytmaker_shared.artifacts.port import (
    CHUNK,
    ArtifactNotFound,
    ArtifactStore,
    ArtifactStoreUnavailable,
    InvalidKey,
    StoredObject,
    check_key,
    guess_type,
)

#: Multipart part size (and threshold): S3 wants at least 5 MiB per part but the last.
DEFAULT_PART_SIZE = 8 << 20
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


def s3_client() -> Any:
    """A boto3 S3 client from the environment (see the module doc)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        s3={"addressing_style": "path" if endpoint else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint or None, region_name=region, config=config
    )


class S3ArtifactStore(ArtifactStore):
    """Artifacts as objects `prefix/key` in `bucket`; URIs are `s3://bucket/prefix/key`."""

    scheme = "s3"

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, part_size: int = 0
    ) -> None:
        if not bucket:
            raise ValueError("an s3:// artifact store needs a bucket: s3://bucket/prefix")
        self.bucket = bucket
        self.prefix = "/".join(check_key(p) for p in prefix.strip("/").split("/")) if prefix else ""
        self.client = client if client is not None else s3_client()
        size = part_size or DEFAULT_PART_SIZE
        self.transfer = TransferConfig(
            multipart_threshold=size, multipart_chunksize=size, max_concurrency=4
        )

    @classmethod
    def from_url(cls, url: str) -> S3ArtifactStore:
        parsed = urlparse(url)
        return cls(parsed.netloc, parsed.path)

    def _name(self, key: str) -> str:
        key = check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    def key(self, uri: str) -> str:
        root = f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"
        if not uri.startswith(root):
            raise InvalidKey(f"{uri!r} is not under {root}")
        return check_key(uri[len(root) :])

    def _call(self, key: str, method: str, **kwargs: Any) -> Any:
        """One client call; a missing object is ArtifactNotFound, any other failure
        ArtifactStoreUnavailable (the message names the bucket, never a credential)."""
        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in _NOT_FOUND:
                raise ArtifactNotFound(key) from None
            raise ArtifactStoreUnavailable(f"s3://{self.bucket}: {method} failed: {code}") from exc
        except BotoCoreError as exc:
            raise ArtifactStoreUnavailable(f"s3://{self.bucket}: {method} failed: {exc}") from exc

    # -- writing --------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str | None = None) -> StoredObject:
        sha = hashlib.sha256(data).hexdigest()
        return await asyncio.to_thread(
            self._upload, key, io.BytesIO(data), len(data), sha, content_type
        )

    async def put_file(
        self, key: str, source: Path, content_type: str | None = None
    ) -> StoredObject:
        def upload() -> StoredObject:
            digest = hashlib.sha256()
            with open(source, "rb") as f:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                size = f.tell()
                f.seek(0)
                return self._upload(key, f, size, digest.hexdigest(), content_type)

        return await asyncio.to_thread(upload)

    def _upload(
        self, key: str, body: BinaryIO, size: int, sha: str, content_type: str | None
    ) -> StoredObject:
        name = self._name(key)
        ctype = content_type or guess_type(key)
        extra = {"ContentType": ctype, "Metadata": {"sha256": sha}}
        try:
            self.client.upload_fileobj(
                body, self.bucket, name, ExtraArgs=extra, Config=self.transfer
            )
        except (ClientError, BotoCoreError) as exc:
            raise ArtifactStoreUnavailable(f"s3://{self.bucket}: upload failed: {exc}") from exc
        return StoredObject(key, self.uri(key), size, sha, ctype)

    # -- reading --------------------------------------------------------------------------

    async def read(self, key: str) -> bytes:
        def get() -> bytes:
            with self.open(key) as body:
                return body.read()

        return await asyncio.to_thread(get)

    def open(self, key: str) -> BinaryIO:
        response = self._call(key, "get_object", Key=self._name(key))
        return cast(BinaryIO, response["Body"])

    def open_range(self, key: str, start: int, end: int) -> BinaryIO:
        """Only the asked-for bytes travel (an HTTP Range GET)."""
        response = self._call(key, "get_object", Key=self._name(key), Range=f"bytes={start}-{end}")
        return cast(BinaryIO, response["Body"])

    async def download(self, key: str, target: Path) -> Path:
        """Parallel ranged GETs into a temporary file beside `target`, then a rename."""

        def fetch() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".tmp-{target.name}.part")
            try:
                self.client.download_file(
                    self.bucket, self._name(key), str(tmp), Config=self.transfer
                )
                os.replace(tmp, target)
            except ClientError as exc:
                tmp.unlink(missing_ok=True)
                if str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND:
                    raise ArtifactNotFound(key) from None
                raise ArtifactStoreUnavailable(f"s3://{self.bucket}: download failed") from exc
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

        await asyncio.to_thread(fetch)
        return target

    async def stat(self, key: str) -> StoredObject:
        head = await asyncio.to_thread(self._call, key, "head_object", Key=self._name(key))
        sha = head.get("Metadata", {}).get("sha256")
        if not sha:  # written by another tool: compute it once, as the file store does
            digest = hashlib.sha256()

            def hash_body() -> None:
                with self.open(key) as body:
                    while chunk := body.read(CHUNK):
                        digest.update(chunk)

            await asyncio.to_thread(hash_body)
            sha = digest.hexdigest()
        ctype = head.get("ContentType") or guess_type(key)
        return StoredObject(key, self.uri(key), int(head["ContentLength"]), sha, ctype)

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._call, key, "head_object", Key=self._name(key))
        except ArtifactNotFound:
            return False
        return True

    # -- listing and deleting -------------------------------------------------------------

    async def delete(self, key: str) -> bool:
        if not await self.exists(key):
            return False
        await asyncio.to_thread(self._call, key, "delete_object", Key=self._name(key))
        return True

    async def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""

        def walk() -> list[str]:
            keys: list[str] = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root + prefix
            )
            try:
                for page in pages:
                    keys += [item["Key"][len(root) :] for item in page.get("Contents", [])]
            except (ClientError, BotoCoreError) as exc:
                raise ArtifactStoreUnavailable(f"s3://{self.bucket}: list failed") from exc
            return sorted(keys)

        return await asyncio.to_thread(walk)

    async def delete_prefix(self, prefix: str) -> int:
        """One DeleteObjects request per thousand keys."""
        if not prefix.endswith("/"):
            raise InvalidKey(f"a prefix to delete must end with '/': {prefix!r}")
        keys = await self.list(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._name(k)} for k in keys[start : start + 1000]]
            await asyncio.to_thread(
                self._call, prefix, "delete_objects", Delete={"Objects": batch, "Quiet": True}
            )
        return len(keys)
