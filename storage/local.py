"""A local directory as object store (the default, `file:///path`)."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from storage.base import Conflict, KeyConflict, ObjectNotFound, ObjectStat

_COPY_CHUNK = 1 << 20


class DirectoryStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):  # keys are normalised already; belt and braces
            raise ObjectNotFound(key)
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.put_stream(key, io.BytesIO(data), len(data), content_type)

    def put_stream(self, key: str, stream: BinaryIO, size: int, content_type: str) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):  # a part of the key is an object
            raise KeyConflict(self.conflict([key]) or Conflict(key, "")) from None
        # Write then rename: readers never see half an object, a rerun overwrites cleanly,
        # and a write that fails leaves nothing behind.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(stream, f, _COPY_CHUNK)
                if f.tell() != size:
                    raise OSError(f"{key}: expected {size} bytes, the stream had {f.tell()}")
            os.replace(tmp, path)
        except IsADirectoryError:  # the key is a folder of other objects
            Path(tmp).unlink(missing_ok=True)
            raise KeyConflict(Conflict(key)) from None
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as f:
                f.seek(offset)
                return f.read(length)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def stat(self, key: str) -> ObjectStat | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        # Every write is a rename of a new file: a new inode.
        return ObjectStat(st.st_size, f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}")

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def conflict(self, keys: list[str]) -> Conflict | None:
        """A file and a folder cannot share a name: a key that is a folder, or one below a
        file (stored, or another of `keys`), cannot be written. Overwriting a file can."""
        writing = set(keys)
        for key in keys:
            path = self._path(key)
            if path.is_dir():
                return Conflict(key)
            for parent in Path(key).parents:
                above = str(parent)
                if above != "." and (above in writing or (self.root / above).is_file()):
                    return Conflict(key, above)
        return None

    def presign(self, method: str, key: str, seconds: int) -> str | None:
        return None  # the gateway serves directory objects through its own signed URLs

    def sweep(self, older_than: float) -> int:
        removed = 0
        for path in self.root.glob("tenants/*/jobs/**/*"):
            if path.is_file() and path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise OSError(f"object directory {self.root} is not writable")
