"""The object-store interface both implementations follow."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol


class ObjectNotFound(KeyError):
    pass


@dataclass(frozen=True)
class Conflict:
    """A key the store cannot write beside what it holds (the directory store; S3's keys
    are flat): it names a folder of other objects (`inside` None), or lies inside the
    object (or another of the same writes) `inside`."""

    key: str
    inside: str | None = None


class KeyConflict(OSError):
    """A write that met a Conflict: the key became a folder, or a part of it an object."""

    def __init__(self, conflict: Conflict) -> None:
        super().__init__(conflict.key)
        self.conflict = conflict


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

    def conflict(self, keys: list[str]) -> Conflict | None:
        """Why these keys (one job's writes) cannot all be written beside what is stored now
        and beside each other, or None. Only a store with folders refuses any (a key that
        names a folder, or lies inside an object); on S3 `a` and `a/b` are both objects."""
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
