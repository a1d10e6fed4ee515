"""A batch's view of the object store: each input's look-ups and header reads are made once
per batch, however many of its jobs name that input (a thousand thumbnails of one photo
cost one stat and one header read). Writes go straight through."""

from __future__ import annotations

from typing import BinaryIO

from storage import ObjectStore
from storage.base import ObjectStat


class BatchObjects:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._stats: dict[str, ObjectStat | None] = {}
        self._ranges: dict[tuple[str, int, int], bytes] = {}

    def stat(self, key: str) -> ObjectStat | None:
        if key not in self._stats:
            self._stats[key] = self.store.stat(key)
        return self._stats[key]

    def size(self, key: str) -> int | None:
        found = self.stat(key)
        return found.size if found is not None else None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        at = (key, offset, length)
        if at not in self._ranges:
            self._ranges[at] = self.store.get_range(key, offset, length)
        return self._ranges[at]

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

    def presign(self, method: str, key: str, seconds: int) -> str | None:
        return self.store.presign(method, key, seconds)

    def sweep(self, older_than: float) -> int:
        return self.store.sweep(older_than)

    def check(self) -> None:
        self.store.check()
