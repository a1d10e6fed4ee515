"""The quote reads an input's header once per version of the object (gateway/quoting.py)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from billing.header_types import Header
from gateway import quoting
from gateway.services import Context
from storage.local import DirectoryStore
from tests import images


class CountingStore(DirectoryStore):
    """A real directory store that counts its ranged reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.ranged = 0

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self.ranged += 1
        return super().get_range(key, offset, length)


class _Ctx:
    def __init__(self, objects: DirectoryStore) -> None:
        self.objects = objects


def _header(store: CountingStore, key: str) -> Header | None:
    ctx = cast(Context, _Ctx(store))
    return quoting._header(ctx, key, store.stat(key), walk=False)


def test_a_header_is_read_once_per_version_of_the_object(tmp_path: Path) -> None:
    store = CountingStore(tmp_path)
    store.put("t/a.png", images.encode(np.zeros((30, 40, 3), np.uint8)), "image/png")
    first = _header(store, "t/a.png")
    reads = store.ranged
    assert first is not None and (first.width, first.height) == (40, 30) and reads > 0
    assert _header(store, "t/a.png") == first
    assert store.ranged == reads  # the same bytes: no read
    store.put("t/a.png", images.encode(np.zeros((50, 40, 3), np.uint8)), "image/png")
    second = _header(store, "t/a.png")  # rewritten: a new version, read again
    assert second is not None and (second.width, second.height) == (40, 50)
    assert store.ranged > reads
    assert _header(store, "t/missing.png") is None
