"""One admission's view of the object store: each input is looked up once, however often
the admission asks (the input's check, then its quote; a batch's thousand thumbnails of one
photo). Header reads are cached across admissions by gateway/quoting.py, keyed by the
object's version. Writes go straight through."""

from __future__ import annotations

from typing import BinaryIO

from storage import ObjectStore
from storage.base import Conflict, ObjectStat


class AdmissionObjects:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._stats: dict[str, ObjectStat | None] = {}

    def stat(self, key: str) -> ObjectStat | None:
        if key not in self._stats:
            self._stats[key] = self.store.stat(key)
        return self._stats[key]

    def size(self, key: str) -> int | None:
        found = self.stat(key)
        return found.size if found is not None else None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self.store.get_range(key, offset, length)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._stats.pop(key, None)
        self.store.put(key, data, content_type)

    def put_stream(self, key: str, stream: BinaryIO, size: int, content_type: str) -> None:
        self._stats.pop(key, None)
        self.store.put_stream(key, stream, size, content_type)

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def delete(self, key: str) -> None:
        self._stats.pop(key, None)
        self.store.delete(key)

    def conflict(self, keys: list[str]) -> Conflict | None:
        return self.store.conflict(keys)

    def presign(self, method: str, key: str, seconds: int) -> str | None:
        return self.store.presign(method, key, seconds)

    def sweep(self, older_than: float) -> int:
        return self.store.sweep(older_than)

    def check(self) -> None:
        self.store.check()
