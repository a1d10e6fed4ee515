"""S3 (MinIO, SeaweedFS, AWS) through the `minio` SDK: `s3://KEY:SECRET@host:port/bucket`, or
`s3://host:port/bucket` with the keys in FLEET_S3_ACCESS_KEY and FLEET_S3_SECRET_KEY.
`?public=https://s3.example.com` (or FLEET_S3_PUBLIC_URL) signs download links for that
endpoint, the one clients reach, when the fleet itself talks to S3 at an internal address."""

from __future__ import annotations

import io
import os
from datetime import timedelta
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from minio import Minio
from minio.error import S3Error

from storage.base import Conflict, ObjectNotFound, ObjectStat

_MISSING = {"NoSuchKey", "NoSuchObject", "NotFound"}


class S3Store:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.bucket = parts.path.strip("/")
        if not (parts.hostname and self.bucket):
            raise ValueError("S3 URL must be s3://[KEY:SECRET@]host[:port]/bucket[?secure=true]")
        endpoint = parts.hostname + (f":{parts.port}" if parts.port else "")
        # Keys in the URL (URL-escaped), else FLEET_S3_ACCESS_KEY / FLEET_S3_SECRET_KEY: keys
        # kept apart need no escaping (an unescaped "/" or "#" breaks the URL's parse).
        if parts.username is not None:
            access_key, secret_key = unquote(parts.username), unquote(parts.password or "")
        else:
            access_key = os.environ.get("FLEET_S3_ACCESS_KEY", "")
            secret_key = os.environ.get("FLEET_S3_SECRET_KEY", "")
        region = query.get("region", [None])[0]
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=query.get("secure", ["false"])[0].lower() == "true",
            region=region,
        )
        self.presigner = self.client
        public_url = query.get("public", [os.environ.get("FLEET_S3_PUBLIC_URL", "")])[0]
        if public_url:  # signing is local: a region given, no request to that host
            public = urlsplit(public_url)
            self.presigner = Minio(
                public.netloc,
                access_key=access_key,
                secret_key=secret_key,
                secure=public.scheme == "https",
                region=region or "us-east-1",
            )
        self._bucket_ready = False

    def _ensure_bucket(self) -> None:
        if not self._bucket_ready:
            if not self.client.bucket_exists(self.bucket):
                try:
                    self.client.make_bucket(self.bucket)
                except S3Error as exc:  # another process made it first
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise
            self._bucket_ready = True

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket()
        self.client.put_object(
            self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
        )

    def put_stream(self, key: str, stream: BinaryIO, size: int, content_type: str) -> None:
        self._ensure_bucket()
        # Parts (5 MiB) go one at a time, so one upload holds one part in memory; the SDK
        # aborts a multipart upload that fails, and S3 shows an object only once complete.
        self.client.put_object(
            self.bucket, key, stream, size, content_type=content_type, num_parallel_uploads=1
        )

    def get(self, key: str) -> bytes:
        return self.get_range(key, 0, 0)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """length 0 reads to the end (the SDK's convention)."""
        self._ensure_bucket()
        try:
            response = self.client.get_object(self.bucket, key, offset=offset, length=length)
        except S3Error as exc:
            if exc.code in _MISSING:
                raise ObjectNotFound(key) from None
            raise
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectStat | None:
        self._ensure_bucket()
        try:
            found = self.client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        return ObjectStat(found.size or 0, found.etag or "")

    def size(self, key: str) -> int | None:
        stat = self.stat(key)
        return stat.size if stat is not None else None

    def delete(self, key: str) -> None:
        self._ensure_bucket()
        self.client.remove_object(self.bucket, key)  # S3 deletes are idempotent

    def conflict(self, keys: list[str]) -> Conflict | None:
        return None  # S3 keys are flat names: `a` and `a/b` are two objects, never a folder

    def presign(self, method: str, key: str, seconds: int) -> str | None:
        self._ensure_bucket()
        expires = timedelta(seconds=seconds)
        if method == "PUT":
            return self.presigner.presigned_put_object(self.bucket, key, expires=expires)
        return self.presigner.presigned_get_object(self.bucket, key, expires=expires)

    def sweep(self, older_than: float) -> int:
        self._ensure_bucket()
        removed = 0
        for obj in self.client.list_objects(self.bucket, prefix="tenants/", recursive=True):
            parts = obj.object_name.split("/")
            if (
                len(parts) > 3
                and parts[2] == "jobs"
                and obj.last_modified is not None
                and obj.last_modified.timestamp() < older_than
            ):
                self.client.remove_object(self.bucket, obj.object_name)
                removed += 1
        return removed

    def check(self) -> None:
        self._ensure_bucket()
