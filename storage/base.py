"""The object-store interface both implementations follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol


class ObjectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class ObjectStat:
    size: int  # bytes
    version: str  # changes whenever the object is written (S3's ETag; inode, size, mtime)


class ObjectStore(Protocol):
    """Whole-object reads and writes on full storage keys (see storage.keys.tenant_key)."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def put_stream(self, key: str, stream: BinaryIO, size: int, content_type: str) -> None:
        """Store `size` bytes read from `stream` without holding them all in memory; a
        failure part way leaves no object (and the old one, if any, in place)."""
        ...

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset` (fewer at the end of the object)."""
        ...

    def size(self, key: str) -> int | None:
        """Bytes of the object, or None when it does not exist."""
        ...

    def stat(self, key: str) -> ObjectStat | None:
        """Size and version in one look-up, or None when the object does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""
        ...

    def presign(self, method: str, key: str, seconds: int) -> str | None:
        """A URL the store itself honours for `method` ("PUT" or "GET") on `key` for
        `seconds`, or None when the gateway must sign its own (the directory store)."""
        ...

    def sweep(self, older_than: float) -> int:
        """Delete job-owned objects (`tenants/*/jobs/...`: default outputs and stored inline
        inputs) last written before `older_than` (unix seconds); return how many."""
        ...

    def check(self) -> None:
        """Raise if the store cannot be used (readiness)."""
        ...
