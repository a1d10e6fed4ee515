"""Object storage: a local directory (default) or S3, chosen by URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from storage.base import Conflict, KeyConflict, ObjectNotFound, ObjectStore
from storage.keys import InvalidKey, normalize_key, tenant_key

__all__ = [
    "Conflict",
    "InvalidKey",
    "KeyConflict",
    "ObjectNotFound",
    "ObjectStore",
    "normalize_key",
    "open_store",
    "tenant_key",
]


def open_store(url: str) -> ObjectStore:
    """`file:///abs/dir` (or `file://rel/dir`) -> DirectoryStore; `s3://...` -> S3Store."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        from storage.local import DirectoryStore

        return DirectoryStore(Path(unquote(url.removeprefix("file://"))))
    if scheme == "s3":
        from storage.s3 import S3Store  # imports the minio SDK only when used

        return S3Store(url)
    raise ValueError(
        f"unsupported storage URL scheme {scheme!r}: use file://DIR or s3://KEY:SECRET@HOST/BUCKET"
    )
