"""A caller's object key (a job's input or output, a path of /v1/objects), checked."""

from __future__ import annotations

from jobs.errors import ErrorCode, FleetError
from storage import InvalidKey, normalize_key

# Directory stores keep each part of a key as a file name: no longer than a file name may be.
MAX_KEY_PART_BYTES = 255


def checked_key(key: str, path: str) -> str:
    """The key normalised, or VALIDATION_ERROR naming where it came from."""
    try:
        key = normalize_key(key)
    except InvalidKey as exc:
        raise FleetError(ErrorCode.VALIDATION_ERROR, f"{exc} - at `{path}`") from None
    if any(
        len(part.encode(errors="surrogatepass")) > MAX_KEY_PART_BYTES for part in key.split("/")
    ):
        raise FleetError(
            ErrorCode.VALIDATION_ERROR,
            f"each `/`-separated part of a key is at most {MAX_KEY_PART_BYTES} bytes - at `{path}`",
        )
    return key
